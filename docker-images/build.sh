#!/usr/bin/env bash
# Builds the CodeExec language images codeexec/<language>:latest, one per
# directory beside this script that holds a Dockerfile.
#
#   docker-images/build.sh [--force] [language...]     (no language = all)
#
# Base image: $CODEEXEC_BASE_IMAGE when set (e.g. debian:bookworm-slim, pulled
# if missing); otherwise the local codeexec/base:bookworm, made with
# debootstrap when missing, so no registry is needed. See README.md.
#
# An image is rebuilt only when its inputs changed: the files of its directory
# and the ID of the base image, hashed into the label org.codeexec.inputs.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# Bump to rebuild every image when the way images are built changes.
scheme=1
local_base="codeexec/base:bookworm"
mirror="${CODEEXEC_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
security_mirror="${CODEEXEC_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"
# The classic builder: BuildKit needs the buildx plugin, which a Debian
# docker.io does not ship, and it may want to pull a frontend image.
export DOCKER_BUILDKIT=0

log() { printf '%s\n' "$*" >&2; }
die() { log "build.sh: $*"; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f s", b - a }'; }

usage() {
	cat <<EOF
usage: $0 [--force] [language...]
Builds codeexec/<language>:latest for each language (default: all of:
$(list_languages | tr '\n' ' '))
  --force   rebuild even when the inputs did not change
Environment:
  CODEEXEC_BASE_IMAGE   base image to build on (default: $local_base, made
                        with debootstrap when missing)
  CODEEXEC_DEBIAN_MIRROR, CODEEXEC_DEBIAN_SECURITY_MIRROR   for debootstrap
EOF
}

list_languages() {
	local d
	for d in "$here"/*/; do
		[[ -f "$d/Dockerfile" ]] && basename "$d"
	done
}

image_id() { docker image inspect -f '{{.Id}}' "$1" 2>/dev/null; }

# make_local_base creates codeexec/base:bookworm from a minbase debootstrap.
make_local_base() {
	command -v debootstrap >/dev/null ||
		die "debootstrap is missing: install it (apt-get install debootstrap) or set CODEEXEC_BASE_IMAGE"
	[[ $(id -u) -eq 0 ]] || die "debootstrap needs root to create $local_base (or set CODEEXEC_BASE_IMAGE)"

	local dir start
	# Not /tmp: it may be a tmpfs mounted nodev or noexec.
	dir="$(mktemp -d "${CODEEXEC_BASE_TMPDIR:-/var/tmp}/codeexec-base.XXXXXX")"
	# shellcheck disable=SC2064
	trap "cleanup_rootfs '$dir'" EXIT
	start="$(now)"
	log "$local_base: debootstrap --variant=minbase bookworm into $dir ($mirror)"
	debootstrap --variant=minbase bookworm "$dir" "$mirror" >"$dir.log" 2>&1 || {
		tail -n 30 "$dir.log" >&2
		die "debootstrap failed (full log: $dir.log)"
	}
	rm -f "$dir.log"
	log "$local_base: debootstrap took $(since "$start")"

	rm -f "$dir/etc/apt/sources.list"
	cat >"$dir/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security_mirror
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
	# What Debian's own container images do: keep docs, man pages and
	# translations out, clean apt's caches after each install, start no
	# services during package installs.
	cat >"$dir/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
	cat >"$dir/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
	printf 'Acquire::Languages "none";\n' >"$dir/etc/apt/apt.conf.d/docker-no-languages"
	printf '#!/bin/sh\nexit 101\n' >"$dir/usr/sbin/policy-rc.d"
	chmod 0755 "$dir/usr/sbin/policy-rc.d"
	chroot "$dir" apt-get clean
	find "$dir/var/lib/apt/lists" -mindepth 1 -maxdepth 1 -not -name partial -exec rm -rf {} +
	rm -rf "$dir"/var/cache/apt/*.bin "$dir"/var/log/apt/* \
		"$dir"/var/log/*.log "$dir"/usr/share/man/* "$dir"/usr/share/info/*
	find "$dir/usr/share/doc" -mindepth 1 -not -type d -not -name copyright -delete
	find "$dir/usr/share/doc" -mindepth 1 -type d -empty -delete
	find "$dir/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
	: >"$dir/etc/resolv.conf"
	: >"$dir/etc/hostname"

	start="$(now)"
	tar --numeric-owner --xattrs -C "$dir" -c . |
		docker import \
			--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
			--change 'CMD ["bash"]' \
			--message "CodeExec base: debootstrap --variant=minbase bookworm" \
			- "$local_base" >/dev/null
	log "$local_base: imported in $(since "$start")"
	cleanup_rootfs "$dir"
	trap - EXIT
}

cleanup_rootfs() {
	local dir="$1" m
	[[ -d "$dir" ]] || return 0
	# debootstrap mounts proc and sys inside; never delete through a mount.
	for m in $(awk -v d="$dir/" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r); do
		umount -l "$m" || true
	done
	rm -rf --one-file-system "$dir"
}

# resolve_base prints the base image to build on, creating or pulling it.
resolve_base() {
	if [[ -n "${CODEEXEC_BASE_IMAGE:-}" ]]; then
		if ! image_id "$CODEEXEC_BASE_IMAGE" >/dev/null; then
			log "base: pulling $CODEEXEC_BASE_IMAGE"
			docker pull "$CODEEXEC_BASE_IMAGE" >&2 || die "cannot pull $CODEEXEC_BASE_IMAGE"
		fi
		printf '%s\n' "$CODEEXEC_BASE_IMAGE"
		return
	fi
	if ! image_id "$local_base" >/dev/null; then
		make_local_base
	fi
	printf '%s\n' "$local_base"
}

# inputs_hash hashes a language directory's files (names and contents) with
# the base image ID and the build scheme.
inputs_hash() {
	local dir="$1" base_id="$2"
	{
		printf 'scheme %s\nbase %s\n' "$scheme" "$base_id"
		(cd "$dir" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum)
	} | sha256sum | cut -c1-64
}

build_one() {
	local lang="$1" base="$2" base_id="$3" force="$4"
	local dir="$here/$lang" tag="codeexec/$lang:latest"
	local inputs current start iid version old_id new_id
	inputs="$(inputs_hash "$dir" "$base_id")"
	old_id="$(image_id "$tag" || true)"
	current="$(docker image inspect -f '{{ index .Config.Labels "org.codeexec.inputs" }}' "$tag" 2>/dev/null || true)"
	if [[ "$force" == 0 && "$current" == "$inputs" ]]; then
		log "codeexec/$lang: up to date"
		return 0
	fi

	start="$(now)"
	log "codeexec/$lang: building on $base"
	iid="$(mktemp)"
	# First pass: the image itself. Its build output goes to a log that is
	# shown only when the build fails.
	if ! docker build --network default --pull=false --build-arg "BASE=$base" \
		--iidfile "$iid" "$dir" >"$iid.log" 2>&1; then
		tail -n 40 "$iid.log" >&2
		rm -f "$iid" "$iid.log"
		die "codeexec/$lang: docker build failed"
	fi
	# The toolchain's version, written by the Dockerfile at build time.
	version="$(docker run --rm --network none --entrypoint cat "$(cat "$iid")" /etc/codeexec/version)" ||
		die "codeexec/$lang: the image has no /etc/codeexec/version"
	version="$(printf '%s' "$version" | head -n1 | tr -cd 'A-Za-z0-9._+~-')"
	[[ -n "$version" ]] || die "codeexec/$lang: empty /etc/codeexec/version"
	# Second pass: every step is cached, it only adds the labels and the tag.
	if ! docker build --network default --pull=false --build-arg "BASE=$base" \
		--label "org.codeexec.language=$lang" \
		--label "org.codeexec.version=$version" \
		--label "org.codeexec.inputs=$inputs" \
		-t "$tag" "$dir" >"$iid.log" 2>&1; then
		tail -n 40 "$iid.log" >&2
		rm -f "$iid" "$iid.log"
		die "codeexec/$lang: docker build (labels) failed"
	fi
	rm -f "$iid" "$iid.log"
	# Drop the image this one replaces, unless something still uses it.
	new_id="$(image_id "$tag")"
	if [[ -n "$old_id" && "$old_id" != "$new_id" ]]; then
		docker image rm "$old_id" >/dev/null 2>&1 || true
	fi
	log "codeexec/$lang: built $tag ($lang $version) in $(since "$start")"
}

main() {
	local force=0 langs=() lang
	while (($#)); do
		case "$1" in
		-h | --help) usage; return 0 ;;
		-f | --force) force=1 ;;
		-*) usage >&2; return 2 ;;
		*) langs+=("$1") ;;
		esac
		shift
	done
	if ((${#langs[@]} == 0)); then
		mapfile -t langs < <(list_languages)
	fi
	for lang in "${langs[@]}"; do
		[[ -f "$here/$lang/Dockerfile" ]] ||
			die "unknown language '$lang' (no $here/$lang/Dockerfile); known: $(list_languages | tr '\n' ' ')"
	done

	docker info >/dev/null 2>&1 || die "cannot reach the Docker daemon (is dockerd running?)"

	local total base base_id
	total="$(now)"
	base="$(resolve_base)"
	base_id="$(image_id "$base")" || die "base image $base is missing"
	log "base: $base ($base_id)"
	for lang in "${langs[@]}"; do
		build_one "$lang" "$base" "$base_id" "$force"
	done
	log "images: done in $(since "$total")"
}

main "$@"
