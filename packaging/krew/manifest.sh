#!/bin/sh
# Prints the krew plugin manifest (dexcred.yaml) for a release, filled in
# from the release archives' sha256sums:
#
#   packaging/krew/manifest.sh --dist dist --version 0.1.0 \
#       --uri-template 'https://github.com/ORG/dexcred/releases/download/v{version}/{archive}' \
#       --homepage https://github.com/ORG/dexcred > dist/dexcred.yaml
#
# `make krew RELEASE_URL=... HOMEPAGE=...` does the same. Every platform
# below needs its archive in sha256sums (`make archive TARGET=<triple>`).
#
# krew unpacks the archive, copies dexcred to kubectl-dexcred (krew only
# handles regular files, so the archive holds no links) and links that into
# ~/.krew/bin; `kubectl dexcred ...` then runs it.
set -eu

usage() {
    sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
}

. "$(dirname -- "$0")/../release-archives.sh"
parse_release_args "$@"

# One platform entry per krew os/arch, from the archive of its Rust target
# triple. All are computed before anything is printed, so a missing archive
# fails the script without printing half a manifest.
platform() {
    os=$1 arch=$2 triple=$3
    archive=$(archive_for "$triple")
    sha=$(sha256_for "$archive")
    cat <<EOF
  - selector:
      matchLabels:
        os: $os
        arch: $arch
    uri: "$(uri_for "$triple")"
    sha256: "$sha"
    files:
    - from: "dexcred-$version-$triple/dexcred"
      to: "kubectl-dexcred"
    - from: "dexcred-$version-$triple/README.md"
      to: "."
    bin: "kubectl-dexcred"
EOF
}
linux_amd64=$(platform linux amd64 x86_64-unknown-linux-gnu)
linux_arm64=$(platform linux arm64 aarch64-unknown-linux-gnu)
darwin_amd64=$(platform darwin amd64 x86_64-apple-darwin)
darwin_arm64=$(platform darwin arm64 aarch64-apple-darwin)

cat <<EOF
apiVersion: krew.googlecontainertools.github.com/v1alpha2
kind: Plugin
metadata:
  name: dexcred
spec:
  version: "v$version"
  homepage: "$homepage"
  shortDescription: "Dex/OIDC tokens for kubectl, from a locked cache"
  description: |
    dexcred is a kubectl exec credential plugin for clusters that accept
    Dex/OIDC id_tokens, such as Platform9 PCD-K. It logs in once (PCD
    through Keystone and Dex, Keycloak, or any OAuth 2.0 token endpoint),
    keeps the tokens in a private, locked cache and renews them with the
    refresh token before they expire, so kubectl stays fast and many
    parallel kubectl runs cost one request to the identity provider.

    kubectl dexcred login     log in now and show who you are
    kubectl dexcred status    list the cached sessions
    kubectl dexcred logout    end the session and delete the tokens
  caveats: |
    Add a user that runs dexcred to your kubeconfig, for example:

      kubectl dexcred kubeconfig --pcd https://pcd.example.com \\
        --tenant TENANT --region REGION --username you@example.com --write

    krew installs the binary only as kubectl-dexcred; run as above, the
    kubeconfig entry it writes runs "kubectl-dexcred kubectl ...". The git
    credential helper needs a git-credential-dexcred link on your PATH
    (ln -s ~/.krew/bin/kubectl-dexcred ~/.local/bin/git-credential-dexcred).
  platforms:
EOF
printf '%s\n' "$linux_amd64" "$linux_arm64" "$darwin_amd64" "$darwin_arm64"
