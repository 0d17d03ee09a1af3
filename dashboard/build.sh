#!/bin/sh
# build.sh: turns the dashboard's sources into the static files Mosquitto's
# http_dir serves (index.html, one classic script, one stylesheet, the
# third-party licences and an example config.json).
#
# Why this exists: Mosquitto 2.0.11 sends no Content-Type, so browsers refuse
# <script type="module">; the page must ship as ONE bundled classic script
# that works with no network access. The bundler and the two libraries are
# pinned by package-lock.json and installed with `npm ci` into a work
# directory OUTSIDE the source tree, so a clean clone never grows a
# node_modules and meson (dashboard/meson.build) or `npm run build` get the
# same bytes from the same lock.
#
# Usage: build.sh SRC_DIR OUT_DIR [WORK_DIR [DEPFILE]]
#   SRC_DIR   the dashboard/ directory (package.json, package-lock.json,
#             index.html, config.example.json, src/)
#   OUT_DIR   where the served files go (created if absent)
#   WORK_DIR  where npm installs the pinned packages (default OUT_DIR/../dashboard-npm)
#   DEPFILE   if given, a Makefile-style list of every source file that went
#             into the bundles, for OUT_DIR/index.html as the build tool (ninja)
#             names it; so a file imported by a new import is tracked at once
set -eu

die() {
	echo "dashboard/build.sh: $*" >&2
	exit 1
}

[ $# -ge 2 ] && [ $# -le 4 ] || die "usage: build.sh SRC_DIR OUT_DIR [WORK_DIR [DEPFILE]]"
DEP_TARGET="$2/index.html"  # as the caller names it: ninja matches the depfile's target by that text

# node and npm: say exactly what to install rather than fail somewhere in npm.
command -v node >/dev/null 2>&1 ||
	die "node was not found: install Node.js 18 or newer with npm (Debian: apt-get install nodejs npm), or configure with 'meson setup -Ddashboard=disabled' to build without the dashboard"
command -v npm >/dev/null 2>&1 ||
	die "npm was not found: install npm (Debian: apt-get install npm), or configure with 'meson setup -Ddashboard=disabled' to build without the dashboard"
NODE_MAJOR=$(node -p 'process.versions.node.split(".")[0]') || die "node does not run: reinstall Node.js 18 or newer"
[ "$NODE_MAJOR" -ge 18 ] 2>/dev/null ||
	die "node $(node --version) is too old: esbuild needs Node.js 18 or newer (install a newer nodejs)"

# Absolute paths: npm and esbuild run in other directories.
abspath() {
	mkdir -p "$1" && (cd "$1" && pwd -P)
}
[ -d "$1" ] || die "source directory $1 does not exist"
SRC=$(cd "$1" && pwd -P)
for f in package.json package-lock.json index.html config.example.json src/main.js src/style.css; do
	[ -f "$SRC/$f" ] || die "$SRC/$f is missing: the dashboard sources are incomplete"
done
OUT=$(abspath "$2")
WORK=$(abspath "${3:-$OUT/../dashboard-npm}")
DEPFILE="${4:-}"

# The pinned packages. npm ci wipes node_modules and reinstalls, which costs a
# few seconds even from npm's cache, so it runs only when the lock changed
# since the last install in WORK. Install scripts stay off: esbuild's native
# binary comes as the optional dependency @esbuild/<platform>, no postinstall
# needed, and no package gets to run code at build time.
STAMP="$WORK/node_modules/.iotguard-installed-lock.json"
if ! cmp -s "$SRC/package-lock.json" "$STAMP" || ! cmp -s "$SRC/package.json" "$WORK/package.json"; then
	rm -f "$STAMP"
	cp "$SRC/package.json" "$SRC/package-lock.json" "$WORK/"
	(cd "$WORK" && npm ci --ignore-scripts --no-audit --no-fund --prefer-offline --loglevel=error) ||
		die "npm ci failed in $WORK (see npm's message above): it needs the npm registry, or npm's cache from an earlier build, to fetch the pinned mqtt, uplot and esbuild"
	cp "$SRC/package-lock.json" "$STAMP"
fi
ESBUILD="$WORK/node_modules/.bin/esbuild"
[ -x "$ESBUILD" ] || die "$ESBUILD is missing after npm ci: remove $WORK and build again"

# Bare imports ('mqtt', 'uplot') resolve from WORK's node_modules, never from
# a node_modules next to the sources.
NODE_PATH="$WORK/node_modules"
export NODE_PATH

# Everything goes to a staging directory first and moves into OUT at the
# end, so a failed build never leaves a half-new set of files behind.
STAGE="$WORK/stage"
rm -rf "$STAGE"
mkdir -p "$STAGE/js"

# The script: one IIFE (a classic script), minified, no source map (the
# sources are in the repository; a map would only double the download).
# Legal comments go to a separate file, gathered below with the licences.
(cd "$WORK" && "$ESBUILD" "$SRC/src/main.js" --bundle --minify --format=iife --platform=browser \
	--target=chrome110,firefox128,safari17 --legal-comments=external --charset=utf8 \
	--metafile="$STAGE/meta-js.json" --log-level=warning \
	--outfile="$STAGE/js/iotguard-dashboard.js") || die "esbuild could not bundle $SRC/src/main.js (see its message above)"

# The stylesheet: uPlot's own CSS first, so the page's rules (style.css and
# what it imports) come later and win; plus any CSS the scripts imported.
CSS_ENTRY="$STAGE/entry.css"
{
	printf '@import "%s";\n' "$WORK/node_modules/uplot/dist/uPlot.min.css"
	printf '@import "%s";\n' "$SRC/src/style.css"
	if [ -f "$STAGE/js/iotguard-dashboard.css" ]; then
		printf '@import "%s";\n' "$STAGE/js/iotguard-dashboard.css"
	fi
} >"$CSS_ENTRY"
(cd "$WORK" && "$ESBUILD" "$CSS_ENTRY" --bundle --minify --target=chrome110,firefox128,safari17 \
	--legal-comments=external --charset=utf8 --metafile="$STAGE/meta-css.json" --log-level=warning \
	--outfile="$STAGE/iotguard-dashboard.css") || die "esbuild could not bundle $SRC/src/style.css (see its message above)"
mv "$STAGE/js/iotguard-dashboard.js" "$STAGE/iotguard-dashboard.js"

# THIRD-PARTY-LICENSES.txt: the legal comments esbuild kept out of the
# bundle, then the whole licence file of every package whose code or CSS is
# in it (mqtt, uplot, and whatever else the metafiles name), so the shipped
# files carry their terms.
(cd "$WORK" && node - "$STAGE" "$WORK" "$DEP_TARGET" >"$STAGE/THIRD-PARTY-LICENSES.txt") <<'EOF' || die "cannot gather the third-party licences (see the message above)"
const fs = require('fs'), path = require('path');
const [stage, work, depTarget] = process.argv.slice(2);
const sources = [];
const out = [];
out.push('Third-party software in the iotguard dashboard (iotguard-dashboard.js and .css)\n');
for (const f of ['js/iotguard-dashboard.js.LEGAL.txt', 'iotguard-dashboard.css.LEGAL.txt']) {
  const p = path.join(stage, f);
  if (fs.existsSync(p)) out.push('==== Legal comments kept from the bundled sources ====\n' + fs.readFileSync(p, 'utf8'));
}
const pkgs = new Map();
for (const meta of ['meta-js.json', 'meta-css.json']) {
  const m = JSON.parse(fs.readFileSync(path.join(stage, meta), 'utf8'));
  for (const input of Object.keys(m.inputs)) {
    const abs = path.resolve(work, input);
    const at = abs.lastIndexOf(path.sep + 'node_modules' + path.sep);
    if (at < 0) {
      if (!abs.startsWith(stage + path.sep)) sources.push(abs);
      continue;
    }
    const rest = abs.slice(at + 14).split(path.sep);
    const name = rest[0].startsWith('@') ? rest[0] + '/' + rest[1] : rest[0];
    pkgs.set(name, abs.slice(0, at + 14) + name);
  }
}
if (!pkgs.has('mqtt') || !pkgs.has('uplot')) {
  console.error('the bundle does not contain both mqtt and uplot (found: ' + [...pkgs.keys()].join(', ') + ')');
  process.exit(1);
}
for (const [name, dir] of [...pkgs].sort()) {
  const pj = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));
  const lic = fs.readdirSync(dir).filter((f) => /^(licen[cs]e|copying)/i.test(f)).sort();
  if (lic.length === 0) {
    console.error(`package ${name} ${pj.version} has no LICENSE file: its terms cannot be shipped`);
    process.exit(1);
  }
  for (const f of lic)
    out.push(`==== ${name} ${pj.version} (${pj.license || 'see below'}): ${f} ====\n` + fs.readFileSync(path.join(dir, f), 'utf8'));
}
process.stdout.write(out.join('\n') + '\n');
// The depfile (Makefile syntax: spaces and '#' escaped, '$' doubled).
const esc = (p) => p.replace(/([ #\\])/g, '\\$1').replace(/\$/g, '$$$$');
fs.writeFileSync(path.join(stage, 'deps.d'), esc(depTarget) + ': ' + [...new Set(sources)].sort().map(esc).join(' \\\n  ') + '\n');
EOF

cp "$SRC/index.html" "$SRC/config.example.json" "$STAGE/"
for f in index.html iotguard-dashboard.js iotguard-dashboard.css THIRD-PARTY-LICENSES.txt config.example.json; do
	mv -f "$STAGE/$f" "$OUT/$f"
done
if [ -n "$DEPFILE" ]; then
	mv -f "$STAGE/deps.d" "$DEPFILE"
fi
rm -rf "$STAGE"
