# Stand-in for the public rust image (scripts/base-images): the local toolchain image plus the
# vendored crates and the cargo config that points crates.io at them.
ARG TOOLCHAIN_IMAGE
FROM ${TOOLCHAIN_IMAGE}
COPY vendor /usr/local/cargo/vendor
COPY config.toml /usr/local/cargo/config.toml
