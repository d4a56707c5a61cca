# Sourced by packaging/krew/manifest.sh and packaging/homebrew/formula.sh:
# command-line parsing and the release archives listed in a sha256sums file.
#
# After `parse_release_args "$@"`: $dist, $version, $template, $homepage.
# `archive_for TRIPLE` prints the archive name, `sha256_for ARCHIVE` its
# checksum from $dist/sha256sums (failing when it is not there), and
# `uri_for TRIPLE` the download URL from the template.

die() {
    echo "$(basename -- "$0"): $*" >&2
    exit 1
}

parse_release_args() {
    dist=
    version=
    template=
    homepage=
    while [ $# -gt 0 ]; do
        case $1 in
            --dist) [ $# -ge 2 ] || die "--dist needs a directory"; dist=$2; shift 2 ;;
            --version) [ $# -ge 2 ] || die "--version needs a value"; version=$2; shift 2 ;;
            --uri-template) [ $# -ge 2 ] || die "--uri-template needs a value"; template=$2; shift 2 ;;
            --homepage) [ $# -ge 2 ] || die "--homepage needs a URL"; homepage=$2; shift 2 ;;
            -h | --help) usage; exit 0 ;;
            *) die "unknown argument '$1' (see --help)" ;;
        esac
    done
    [ -n "$dist" ] || die "--dist DIR is required (the directory holding sha256sums)"
    [ -f "$dist/sha256sums" ] || die "no sha256sums in $dist; run \`make archive\` for each target first"
    [ -n "$version" ] || die "--version is required"
    [ -n "$homepage" ] || die "--homepage URL is required (make HOMEPAGE=...)"
    case $template in
        https://*{archive}* | https://*{target}*) ;;
        '') die "--uri-template is required (make RELEASE_URL=https://.../v{version}/{archive})" ;;
        *) die "--uri-template must be an https:// URL containing {archive} or {target}, not '$template'" ;;
    esac
}

archive_for() {
    echo "dexcred-$version-$1.tar.gz"
}

sha256_for() {
    sum=$(awk -v f="$1" '$2 == f || $2 == "*" f { print $1 }' "$dist/sha256sums")
    case $sum in
        [0-9a-f]*) [ ${#sum} -eq 64 ] || die "bad checksum for $1 in $dist/sha256sums" ;;
        *) die "$1 is not listed in $dist/sha256sums; run \`make archive TARGET=...\` for it" ;;
    esac
    echo "$sum"
}

uri_for() {
    echo "$template" | sed -e "s|{version}|$version|g" -e "s|{target}|$1|g" \
        -e "s|{archive}|$(archive_for "$1")|g"
}
