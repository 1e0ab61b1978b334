#!/usr/bin/env bash
# Vendors the studio's one third-party asset: the standalone ES-module build of the
# `vanilla-jsoneditor` npm package (the JSON editor of studio/index.html).
#
#   scripts/vendor-studio.sh          fetch the pinned version with `npm pack`, verify the
#                                     tarball, write studio/vendor/vanilla-jsoneditor.js (the
#                                     package's standalone.js, byte for byte), its licence and
#                                     studio/vendor/VERSION (name, version, the tarball's
#                                     integrity and the files' sha256)
#   scripts/vendor-studio.sh --check  no network: verify the committed files against VERSION
#                                     (and that VERSION is for the version pinned here)
#
# To upgrade: change PKG_VERSION below, run the script, check the editor API the studio uses
# (createJSONEditor, createAjvValidator, in package/standalone.d.ts) and commit studio/vendor/.
set -euo pipefail

PKG_NAME=vanilla-jsoneditor
PKG_VERSION=3.13.0 # exact version, never a range

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
vendor="$root/studio/vendor"
js_out="$vendor/vanilla-jsoneditor.js"
license_out="$vendor/vanilla-jsoneditor.LICENSE.md"
meta="$vendor/VERSION"

die() {
    echo "vendor-studio: $*" >&2
    exit 1
}

sha256() { sha256sum "$1" | cut -d' ' -f1; }

# The value of `key=value` in VERSION.
meta_get() {
    local v
    v=$(grep -E "^$1=" "$meta" | head -n1 | cut -d= -f2-) || true
    [ -n "$v" ] || die "$meta has no '$1='"
    printf '%s' "$v"
}

check() {
    [ -f "$meta" ] || die "$meta is missing (run scripts/vendor-studio.sh)"
    local name version
    name=$(meta_get package)
    version=$(meta_get version)
    [ "$name" = "$PKG_NAME" ] || die "VERSION is for package '$name', expected '$PKG_NAME'"
    [ "$version" = "$PKG_VERSION" ] ||
        die "VERSION is for $PKG_NAME@$version but the script pins $PKG_VERSION (run scripts/vendor-studio.sh)"
    local file key want got ok=1
    for pair in "$js_out:sha256" "$license_out:license_sha256"; do
        file=${pair%%:*}
        key=${pair##*:}
        want=$(meta_get "$key")
        [ -f "$file" ] || die "$file is missing (run scripts/vendor-studio.sh)"
        got=$(sha256 "$file")
        if [ "$got" != "$want" ]; then
            echo "vendor-studio: $file: sha256 $got, VERSION says $want" >&2
            ok=0
        fi
    done
    [ "$ok" = 1 ] || die "vendored files do not match VERSION (re-run scripts/vendor-studio.sh)"
    echo "vendor-studio: $PKG_NAME@$PKG_VERSION OK ($(meta_get sha256))"
}

fetch() {
    command -v npm >/dev/null || die "npm is needed to vendor (apt-get install npm)"
    command -v node >/dev/null || die "node is needed to vendor"
    # A global (not local): the EXIT trap runs after this function has returned.
    tmp=$(mktemp -d)
    trap 'rm -rf "${tmp:-}"' EXIT

    # npm pack downloads the tarball from the registry (checking it against the registry's
    # integrity) and reports its own integrity, which we check once more below.
    (cd "$tmp" && npm pack "$PKG_NAME@$PKG_VERSION" --json --silent >pack.json) ||
        die "npm pack $PKG_NAME@$PKG_VERSION failed"

    local fields integrity filename got_version
    fields=$(node -e '
        const p = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"))[0];
        if (!p || !p.integrity || !p.filename) process.exit(1);
        console.log([p.version, p.integrity, p.filename].join("\n"));
    ' "$tmp/pack.json") || die "unexpected npm pack --json output: $(cat "$tmp/pack.json")"
    got_version=$(sed -n 1p <<<"$fields")
    integrity=$(sed -n 2p <<<"$fields")
    filename=$(sed -n 3p <<<"$fields")
    [ "$got_version" = "$PKG_VERSION" ] || die "npm pack gave version $got_version, expected $PKG_VERSION"
    case "$integrity" in
    sha512-*) ;;
    *) die "npm pack gave no sha512 integrity: $integrity" ;;
    esac
    local tgz="$tmp/$filename"
    [ -f "$tgz" ] || die "npm pack wrote no $filename"
    local computed
    computed="sha512-$(openssl dgst -sha512 -binary "$tgz" | base64 -w0)"
    [ "$computed" = "$integrity" ] || die "tarball sha512 $computed does not match npm's $integrity"

    tar -xzf "$tgz" -C "$tmp" package/standalone.js package/LICENSE.md package/package.json ||
        die "$filename has no package/standalone.js"
    # The file must be the ES module exporting what app.js imports.
    grep -q 'createJSONEditor' "$tmp/package/standalone.js" &&
        grep -q 'createAjvValidator' "$tmp/package/standalone.js" ||
        die "standalone.js does not export createJSONEditor/createAjvValidator"

    mkdir -p "$vendor"
    cp "$tmp/package/standalone.js" "$js_out"
    cp "$tmp/package/LICENSE.md" "$license_out"
    local license
    license=$(node -p 'require(process.argv[1]).license' "$tmp/package/package.json")
    cat >"$meta" <<EOF
# Written by scripts/vendor-studio.sh; check with scripts/vendor-studio.sh --check.
package=$PKG_NAME
version=$PKG_VERSION
license=$license
source=npm pack $PKG_NAME@$PKG_VERSION, file package/standalone.js (unmodified)
tarball=$filename
integrity=$integrity
file=vanilla-jsoneditor.js
sha256=$(sha256 "$js_out")
license_file=vanilla-jsoneditor.LICENSE.md
license_sha256=$(sha256 "$license_out")
EOF
    echo "vendor-studio: wrote $js_out ($PKG_NAME@$PKG_VERSION, $(wc -c <"$js_out") bytes)"
    check
}

case "${1:-}" in
--check) check ;;
"") fetch ;;
-h | --help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' ;;
*) die "unknown argument '$1' (use --check or nothing)" ;;
esac
