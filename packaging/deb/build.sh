#!/usr/bin/env bash
# Builds the Debian package with dpkg-deb from the [package.metadata.deb]
# table of Cargo.toml, the table cargo-deb reads: the same assets, links,
# modes and control fields, without installing cargo-deb.
#
#   packaging/deb/build.sh [--binary FILE] [--gen-binary FILE] [--out DIR]
#                          [--arch ARCH] [--fast]
#
# --binary      the dexcred to package [default: `make static`, the static
#               release build for this machine's target]
# --gen-binary  a dexcred that runs here, to generate the completions and the
#               man page [default: --binary]
# --out         where the .deb goes [default: dist]
# --arch        Debian architecture [default: from the binary's ELF header]
# --fast        gzip -1 instead of xz (for tests)
#
# Asset sources are resolved as cargo-deb resolves them: target/release/X is
# the built binary (cargo-deb maps it to target/<triple>/release/ when given
# --target, as the static build needs); target/assets/X are the generated completions and man
# page (`make deb-assets` writes them for cargo-deb; here they are generated
# into a scratch directory); anything else is relative to the repository and
# may be a glob.
#
# Needs bash, python3 (3.11+, to read Cargo.toml with tomllib), dpkg-deb, and
# optionally dpkg-shlibdeps (dpkg-dev) for `depends = "$auto"`.
set -euo pipefail

repo=$(cd -- "$(dirname -- "$0")/../.." && pwd)
binary=
gen_binary=
out=dist
arch=
compress=(-Zxz -z9)

die() {
    echo "build.sh: $*" >&2
    exit 1
}

while [ $# -gt 0 ]; do
    case $1 in
        --binary) binary=${2:?--binary needs a file}; shift 2 ;;
        --gen-binary) gen_binary=${2:?--gen-binary needs a file}; shift 2 ;;
        --out) out=${2:?--out needs a directory}; shift 2 ;;
        --arch) arch=${2:?--arch needs a Debian architecture}; shift 2 ;;
        --fast) compress=(-Zgzip -z1); shift ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done

for tool in python3 dpkg-deb; do
    command -v "$tool" >/dev/null || die "$tool is required"
done

if [ -z "$binary" ]; then
    binary=$(cd "$repo" && make --no-print-directory -s static | tail -n 1)
fi
[ -x "$binary" ] || die "no executable dexcred at '$binary'"
binary=$(cd -- "$(dirname -- "$binary")" && pwd)/$(basename -- "$binary")
gen_binary=${gen_binary:-$binary}

if [ -z "$arch" ]; then
    case $(LC_ALL=C readelf -h "$binary" 2>/dev/null | sed -n 's/^ *Machine: *//p') in
        *X86-64*) arch=amd64 ;;
        *AArch64*) arch=arm64 ;;
        *) arch=$(dpkg --print-architecture) ;;
    esac
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/dexcred-deb.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/root
mkdir -p "$root/DEBIAN" "$work/assets/completions" "$work/assets/man"

# The generated assets, as `make deb-assets` makes them for cargo-deb.
"$gen_binary" completions bash >"$work/assets/completions/dexcred.bash"
"$gen_binary" completions zsh >"$work/assets/completions/_dexcred"
"$gen_binary" completions fish >"$work/assets/completions/dexcred.fish"
"$gen_binary" man | gzip -9n >"$work/assets/man/dexcred.1.gz"

# Cargo.toml → tab-separated lines: `field NAME VALUE`, `asset SRC DEST MODE`,
# `link DEST TARGET`. Newlines in values are sent as \n.
python3 - "$repo/Cargo.toml" >"$work/metadata" <<'EOF'
import sys, tomllib

with open(sys.argv[1], "rb") as f:
    manifest = tomllib.load(f)
package = manifest["package"]
deb = package.get("metadata", {}).get("deb", {})

def field(name, value):
    if value is not None:
        print("field", name, str(value).replace("\n", "\\n"), sep="\t")

field("name", deb.get("name", package["name"]))
field("version", package["version"])
field("revision", deb.get("revision", "1"))
field("description", package.get("description", ""))
field("extended", deb.get("extended-description"))
field("license", package.get("license"))
field("homepage", package.get("homepage") or package.get("repository"))
field("maintainer", deb.get("maintainer") or (package.get("authors") or [None])[0])
field("copyright", deb.get("copyright") or ", ".join(package.get("authors", [])))
field("section", deb.get("section"))
field("priority", deb.get("priority", "optional"))
depends = deb.get("depends", "$auto")
field("depends", ", ".join(depends) if isinstance(depends, list) else depends)
for asset in deb.get("assets", ["$auto"]):
    if isinstance(asset, list):
        src, dest, mode = (list(asset) + ["644"])[:3]
        print("asset", src, dest, mode, sep="\t")
    elif isinstance(asset, dict) and "link_name" in asset:
        print("link", asset["dest"], asset["link_name"], sep="\t")
    elif isinstance(asset, dict):
        print("asset", asset["source"], asset["dest"], asset.get("mode", "644"), sep="\t")
    else:
        sys.exit(f"unsupported asset {asset!r} (list the files explicitly)")
EOF

declare -A meta=()
while IFS=$'\t' read -r kind a b c; do
    [ "$kind" = field ] && meta[$a]=$b
done <"$work/metadata"
[ -n "${meta[maintainer]:-}" ] || die "set maintainer in [package.metadata.deb]"

# Resolves an asset source as cargo-deb does (see the header).
sources() {
    case $1 in
        target/release/dexcred) echo "$binary" ;;
        target/release/*) die "only the dexcred binary is built; cannot package '$1'" ;;
        target/assets/*) echo "$work/assets/${1#target/assets/}" ;;
        *)
            shopt -s nullglob
            local matches=("$repo"/$1)
            shopt -u nullglob
            [ ${#matches[@]} -gt 0 ] || die "asset '$1' matches no file"
            printf '%s\n' "${matches[@]}"
            ;;
    esac
}

while IFS=$'\t' read -r kind src dest mode; do
    case $kind in
        asset)
            matches=$(sources "$src")
            while IFS= read -r file; do
                [ -f "$file" ] || die "asset '$src': '$file' is not a file"
                # A directory destination keeps the file name the metadata
                # gives (target/release/dexcred is installed as dexcred,
                # whatever --binary is called); globs keep each match's name.
                target=$dest
                case $dest:$src in
                    */:target/*) target=$dest$(basename -- "$src") ;;
                    */:*) target=$dest$(basename -- "$file") ;;
                esac
                install -D -m "$mode" "$file" "$root/$target"
            done <<<"$matches"
            ;;
        link)
            # `link DEST LINK_NAME`: LINK_NAME is what the link points to,
            # relative to its own directory (as cargo-deb and dh_link write it).
            mkdir -p "$root/$(dirname -- "$src")"
            ln -sfn "$dest" "$root/$src"
            [ -e "$root/$src" ] || die "link $src -> $dest points to nothing in the package"
            ;;
    esac
done <"$work/metadata"

name=${meta[name]}
doc=$root/usr/share/doc/$name
mkdir -p "$doc"
{
    echo "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/"
    echo "Upstream-Name: $name"
    echo
    echo "Files: *"
    echo "Copyright: ${meta[copyright]:-the $name authors}"
    echo "License: ${meta[license]:-unknown}"
    if [ "${meta[license]:-}" = Apache-2.0 ]; then
        echo " On Debian systems, the complete text of the Apache License 2.0 can be"
        echo " found in /usr/share/common-licenses/Apache-2.0."
    fi
} >"$doc/copyright"
chmod 0644 "$doc/copyright"

depends=${meta[depends]:-}
if [[ $depends == *'$auto'* ]]; then
    auto=
    # A static binary (the default build) needs no shared library at all.
    if ! LC_ALL=C readelf -d "$binary" 2>/dev/null | grep -q 'Shared library:'; then
        :
    elif command -v dpkg-shlibdeps >/dev/null; then
        mkdir -p "$work/shlibs/debian"
        : >"$work/shlibs/debian/control"
        auto=$(cd "$work/shlibs" && dpkg-shlibdeps -O "$root/usr/bin/dexcred" 2>/dev/null |
            sed -n 's/^shlibs:Depends=//p') || auto=
    fi
    if [ -z "$auto" ] && LC_ALL=C readelf -d "$binary" 2>/dev/null | grep -q 'Shared library:'; then
        echo "build.sh: warning: dpkg-shlibdeps (dpkg-dev) unavailable; Depends from the ELF header" >&2
        auto=$(LC_ALL=C readelf -d "$binary" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p' |
            sed -e 's/^libc\.so\..*/libc6/' -e 's/^libgcc_s\.so\..*/libgcc-s1/' -e '/^ld-linux/d' |
            sort -u | paste -sd, - | sed 's/,/, /g')
    fi
    depends=${depends//\$auto/$auto}
    depends=$(printf '%s' "$depends" | sed -e 's/^[, ]*//' -e 's/[, ]*$//')
fi

installed_size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
{
    echo "Package: $name"
    echo "Version: ${meta[version]}${meta[revision]:+-${meta[revision]}}"
    echo "Architecture: $arch"
    echo "Maintainer: ${meta[maintainer]}"
    echo "Installed-Size: $installed_size"
    [ -z "$depends" ] || echo "Depends: $depends"
    [ -z "${meta[section]:-}" ] || echo "Section: ${meta[section]}"
    echo "Priority: ${meta[priority]}"
    [ -z "${meta[homepage]:-}" ] || echo "Homepage: ${meta[homepage]}"
    echo "Description: ${meta[description]}"
    if [ -n "${meta[extended]:-}" ]; then
        printf '%b\n' "${meta[extended]}" | fold -s -w 78 | sed -e 's/ *$//' -e 's/^$/./' -e 's/^/ /'
    fi
} >"$root/DEBIAN/control"
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z |
    xargs -0 md5sum) >"$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/control" "$root/DEBIAN/md5sums"
find "$root" -type d -exec chmod 0755 {} +

mkdir -p "$out"
deb=$out/${name}_${meta[version]}${meta[revision]:+-${meta[revision]}}_$arch.deb
dpkg-deb --root-owner-group "${compress[@]}" --build "$root" "$deb.tmp" >/dev/null
mv -f "$deb.tmp" "$deb"
echo "$deb"
