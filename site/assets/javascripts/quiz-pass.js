// Scoring for the mkdocs-quiz pages: the first answer to each question counts.
//
// mkdocs-quiz scores the latest answer to each question, so retrying until right reaches 100 %.
// This script keeps its own record of an attempt instead, in localStorage per page:
//   - a capture-phase "submit" listener sees every answer before mkdocs-quiz handles it and
//     stores whether the *first* answer to that question was right; later tries change nothing;
//   - mkdocs-quiz's reset controls ("Reset quiz", the sidebar's "Reset") start a fresh attempt:
//     a click on one of them, followed by mkdocs-quiz's progress event with nothing answered;
//   - the best score of any attempt and its date are kept, passing or not.
// It fills every <div class="quiz-pass" data-pass-mark="70"> box of the page whenever
// mkdocs-quiz emits its `quizProgressUpdate` event ({total, answered, correct, ...}).
(function () {
  const ATTEMPT = "quiz_attempt_"; // {first: {questionId: true|false}}
  const BEST = "quiz_best_"; // {score, date}
  const RESET_CONTROLS = ".quiz-intro-reset, .quiz-results-reset, .quiz-reset-all-link";

  // localStorage, per page; a plain object stands in when storage is disabled.
  const memory = {};
  function read(prefix) {
    const key = prefix + window.location.pathname;
    try {
      return JSON.parse(localStorage.getItem(key) || "null");
    } catch (e) {
      return memory[key] || null;
    }
  }

  function write(prefix, value) {
    const key = prefix + window.location.pathname;
    memory[key] = value;
    try {
      localStorage.setItem(key, JSON.stringify(value));
    } catch (e) {
      // Storage disabled: the score is shown for this visit, just not remembered.
    }
  }

  function currentAttempt() {
    const stored = read(ATTEMPT);
    return stored && stored.first && typeof stored.first === "object" ? stored : { first: {} };
  }

  function today() {
    const d = new Date();
    const pad = (n) => String(n).padStart(2, "0");
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
  }

  // The same rule as mkdocs-quiz: right when exactly the correct options are ticked.
  function answeredRight(quiz) {
    const blanks = quiz.querySelectorAll(".quiz-blank-input");
    if (blanks.length) {
      const norm = (s) => (s || "").trim().toLowerCase();
      return [...blanks].every((b) => norm(b.value) === norm(b.getAttribute("data-answer")));
    }
    const options = quiz.querySelectorAll('input[name="answer"]');
    return options.length > 0 && [...options].every((o) => o.checked === o.hasAttribute("data-correct"));
  }

  document.addEventListener(
    "submit",
    function (event) {
      const quiz = event.target.closest && event.target.closest(".quiz");
      if (!quiz || !quiz.id) return;
      const record = currentAttempt();
      if (!(quiz.id in record.first)) {
        record.first[quiz.id] = answeredRight(quiz);
        write(ATTEMPT, record);
      }
    },
    true, // capture: before mkdocs-quiz's own handler on the form
  );

  // A reset control was pressed and mkdocs-quiz has not yet reported the result.
  let resetting = false;
  document.addEventListener(
    "click",
    function (event) {
      if (event.target.closest && event.target.closest(RESET_CONTROLS)) resetting = true;
    },
    true,
  );
  // Bubble phase: runs after mkdocs-quiz's handler (and its confirm dialog) on the control.
  document.addEventListener("click", function () {
    resetting = false;
  });

  function render(progress) {
    const boxes = document.querySelectorAll(".quiz-pass");
    if (!boxes.length || !progress.total) return;
    const record = currentAttempt();
    const ids = new Set([...document.querySelectorAll(".quiz")].map((q) => q.id));
    const firsts = Object.entries(record.first).filter(([id]) => ids.has(id));
    const right = firsts.filter(([, ok]) => ok).length;
    const score = Math.round((100 * right) / progress.total);
    const passMark = Number(boxes[0].dataset.passMark || 70);

    let best = read(BEST);
    if (firsts.length && (!best || score > best.score)) {
      best = { score: score, date: today() };
      write(BEST, best);
    }

    const passed = score >= passMark;
    const bestText = best
      ? `Your best: ${best.score} % on ${best.date} (${best.score >= passMark ? "passed" : "not passed"}).`
      : "";
    boxes.forEach(function (box) {
      box.classList.toggle("quiz-pass--passed", passed);
      const set = (selector, text) => {
        const el = box.querySelector(selector);
        if (el) el.textContent = text;
      };
      set(".quiz-pass-score", score + " %");
      set(".quiz-pass-status", passed ? "passed" : "not passed yet");
      set(".quiz-pass-answered", `${firsts.length} of ${progress.total}`);
      set(".quiz-pass-record", bestText);
    });
  }

  // With instant navigation mkdocs-quiz re-initialises on every quiz page and emits the event
  // again; everything is read from storage for the page being shown.
  window.addEventListener("quizProgressUpdate", function (event) {
    if (resetting && event.detail.answered === 0) {
      write(ATTEMPT, { first: {} }); // a retake: a fresh attempt at the whole quiz
      resetting = false;
    }
    render(event.detail);
  });
})();
