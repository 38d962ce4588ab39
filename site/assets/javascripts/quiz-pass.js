// Pass mark for mkdocs-quiz pages. mkdocs-quiz keeps the score but has no pass mark, so we
// listen to its progress event ({total, answered, correct, percentage, score}) and fill in the
// page's <div class="quiz-pass" data-pass-mark="70"> box. A pass is remembered per page.
(function () {
  const STORAGE_PREFIX = "quiz_pass_";

  function readRecord(key) {
    try {
      return JSON.parse(localStorage.getItem(key) || "null");
    } catch (e) {
      return null;
    }
  }

  function update(progress) {
    const box = document.querySelector(".quiz-pass");
    if (!box || !progress.total) return;

    const passMark = Number(box.dataset.passMark || 70);
    const passed = progress.score >= passMark;
    const key = STORAGE_PREFIX + window.location.pathname;
    let record = readRecord(key);
    if (passed && (!record || progress.score > record.score)) {
      record = { score: progress.score, date: new Date().toISOString().slice(0, 10) };
      try {
        localStorage.setItem(key, JSON.stringify(record));
      } catch (e) {
        // Storage disabled: the pass is shown, just not remembered.
      }
    }

    box.classList.toggle("quiz-pass--passed", passed);
    box.querySelector(".quiz-pass-score").textContent = progress.score + " %";
    box.querySelector(".quiz-pass-status").textContent = passed ? "passed" : "not passed yet";
    box.querySelector(".quiz-pass-record").textContent = record
      ? `You passed this quiz on ${record.date} with ${record.score} %.`
      : "";
  }

  // Registered once; with instant navigation mkdocs-quiz re-emits the event on each quiz page.
  window.addEventListener("quizProgressUpdate", function (event) {
    update(event.detail);
  });
})();
