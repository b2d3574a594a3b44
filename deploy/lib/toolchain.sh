# shellcheck shell=bash
# The Rust toolchain for deploy/up.sh and deploy/test.sh. Sourced, never executed.
#
# Nothing here installs Rust: a toolchain cannot be downloaded from this environment, so a
# missing or too old one is reported with what is needed instead.

RUST_MIN_VERSION=1.95

# Make cargo findable (rustup installs under ~/.cargo/bin, which `sudo` drops from PATH) and
# check its version. Prints the problem and returns 1 when there is no usable cargo.
require_cargo() {
    local dir version
    for dir in "${CARGO_HOME:-$HOME/.cargo}/bin" /usr/local/cargo/bin; do
        if [[ -x $dir/cargo && :$PATH: != *":$dir:"* ]]; then
            PATH=$dir:$PATH
        fi
    done
    export PATH
    if ! command -v cargo >/dev/null; then
        printf 'ERROR: cargo not found. A Rust toolchain >= %s is needed (cargo and rustc on\n' "$RUST_MIN_VERSION" >&2
        printf '       PATH, or in ~/.cargo/bin); none can be downloaded here, so install one first.\n' >&2
        return 1
    fi
    version=$(cargo --version 2>/dev/null | awk '{ print $2 }')
    if [[ ! $version =~ ^[0-9]+\.[0-9]+ ]] ||
        [[ $(printf '%s\n' "$RUST_MIN_VERSION" "${version%%-*}" | sort -V | head -n 1) != "$RUST_MIN_VERSION" ]]; then
        printf 'ERROR: cargo %s is too old (or unreadable): a Rust toolchain >= %s is needed.\n' \
            "${version:-?}" "$RUST_MIN_VERSION" >&2
        return 1
    fi
}
