#!/usr/bin/env bash
# Refetch the vendored MathJax 3 and mermaid 11 from the npm registry, keeping only the
# files the site loads. Run from anywhere; needs npm and tar. Review the diff and commit.
#   site/assets/vendor/update.sh                      # the pinned versions below
#   MERMAID_VERSION=11.18.0 site/assets/vendor/update.sh
# Stay on MathJax 3 and mermaid 11: MathJax 4 and mermaid 12 load fonts from CDNs and are
# untested with mkdocs-material 9.
set -euo pipefail

MATHJAX_VERSION="${MATHJAX_VERSION:-3.2.2}"
MERMAID_VERSION="${MERMAID_VERSION:-11.17.2}"

case "$MATHJAX_VERSION" in 3.*) ;; *) echo "MathJax must stay on 3.x" >&2; exit 1 ;; esac
case "$MERMAID_VERSION" in 11.*) ;; *) echo "mermaid must stay on 11.x" >&2; exit 1 ;; esac

vendor="$(cd "$(dirname "$0")" && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

cd "$tmp"
npm pack --silent "mathjax@$MATHJAX_VERSION" "mermaid@$MERMAID_VERSION" >/dev/null
mkdir mathjax mermaid
tar -xzf "mathjax-$MATHJAX_VERSION.tgz" -C mathjax --strip-components=1
tar -xzf "mermaid-$MERMAID_VERSION.tgz" -C mermaid --strip-components=1

rm -rf "$vendor/mathjax" "$vendor/mermaid"
mkdir -p "$vendor/mathjax/output/chtml" "$vendor/mathjax/input/tex" "$vendor/mermaid"

# tex-chtml.js finds its fonts and its on-demand TeX extensions (\require, autoload)
# relative to its own URL, so keep the es5/ layout.
cp mathjax/es5/tex-chtml.js mathjax/LICENSE "$vendor/mathjax/"
cp -R mathjax/es5/output/chtml/fonts "$vendor/mathjax/output/chtml/"
cp -R mathjax/es5/input/tex/extensions "$vendor/mathjax/input/tex/"
# The UMD bundle defines window.mermaid, which mkdocs-material then uses instead of a CDN.
cp mermaid/dist/mermaid.min.js mermaid/LICENSE "$vendor/mermaid/"

cat > "$vendor/VERSIONS" <<VERSIONS
mathjax $MATHJAX_VERSION (Apache-2.0, mathjax/LICENSE): es5/tex-chtml.js, es5/output/chtml/fonts, es5/input/tex/extensions
mermaid $MERMAID_VERSION (MIT, mermaid/LICENSE): dist/mermaid.min.js
VERSIONS
echo "vendored: mathjax $MATHJAX_VERSION, mermaid $MERMAID_VERSION into $vendor"
