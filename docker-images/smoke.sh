#!/usr/bin/env bash
# Runs a hello world in each codeexec/<language> image the way the runner
# does, under the sandbox's default limits: a container doing `sleep infinity`
# under --init, the sources streamed into /work by `docker exec tar -x`, then
# the compile and run commands through `docker exec`.
#
#   docker-images/smoke.sh [language...]     (no language = all)
#
# The commands here are the ones documented in README.md; keep them in step
# with runner/languages.json.
set -euo pipefail

limits=(--memory 256m --memory-swap 256m --pids-limit 64 --cpus 1
	--ulimit nofile=256:256 --ulimit fsize=67108864:67108864)
sandbox=(--network none --read-only
	--tmpfs /work:rw,exec,size=64m,uid=10001,gid=10001,mode=0700
	--tmpfs /tmp:rw,exec,size=64m,uid=10001,gid=10001
	--user 10001:10001 --cap-drop ALL --security-opt no-new-privileges)

declare -A file source compile run
file[python]=main.py
source[python]='import sys; print("hello, world from python", sys.version.split()[0])'
run[python]='python3 main.py'
file[javascript]=main.js
source[javascript]='console.log("hello, world from node", process.versions.node);'
run[javascript]='node main.js'
file[java]=Main.java
source[java]='public class Main { public static void main(String[] a) { System.out.println("hello, world from java " + Runtime.version()); } }'
compile[java]='javac -J-XX:+UseSerialGC -J-XX:TieredStopAtLevel=1 Main.java'
run[java]='java -XX:+UseSerialGC -XX:MaxRAMPercentage=60 -cp . Main'
file[go]=main.go
source[go]='package main

import (
	"fmt"
	"runtime"
)

func main() { fmt.Println("hello, world from go", runtime.Version()) }'
compile[go]='go build -o main .'
run[go]='./main'
file[cpp]=main.cpp
source[cpp]='#include <iostream>
int main() { std::cout << "hello, world from c++ " << __VERSION__ << std::endl; }'
compile[cpp]='g++ -O2 -o main *.cpp'
run[cpp]='./main'
file[ruby]=main.rb
source[ruby]='puts "hello, world from ruby #{RUBY_VERSION}"'
run[ruby]='ruby main.rb'

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f s", b - a }'; }

smoke() {
	local lang="$1" src cid rc=0
	src="$(mktemp -d)"
	printf '%s\n' "${source[$lang]}" >"$src/${file[$lang]}"
	cid="$(docker run -d --init "${sandbox[@]}" "${limits[@]}" \
		--label org.codeexec.smoke=1 "codeexec/$lang:latest" sleep infinity)"
	smoke_in "$lang" "$src" "$cid" || rc=$?
	docker rm -f "$cid" >/dev/null 2>&1 || true
	rm -rf "$src"
	return "$rc"
}

smoke_in() {
	local lang="$1" src="$2" cid="$3" start out rc=0
	tar -C "$src" -c . | docker exec -i "$cid" tar -x -C /work
	if [[ -n "${compile[$lang]:-}" ]]; then
		start="$(now)"
		docker exec "$cid" sh -c "${compile[$lang]}" || {
			echo "$lang: FAIL: compile: ${compile[$lang]}"
			return 1
		}
		printf '%-10s compile %s  (%s)\n' "$lang" "$(since "$start")" "${compile[$lang]}"
	fi
	start="$(now)"
	out="$(docker exec "$cid" sh -c "${run[$lang]}" 2>&1)" || rc=$?
	printf '%-10s run     %s  (%s) -> %s\n' "$lang" "$(since "$start")" "${run[$lang]}" "$out"
	if [[ $rc -ne 0 || "$out" != "hello, world from "* ]]; then
		echo "$lang: FAIL: exit $rc"
		return 1
	fi
}

main() {
	local langs=("$@") lang failed=0
	if ((${#langs[@]} == 0)); then
		langs=(python javascript java go cpp ruby)
	fi
	for lang in "${langs[@]}"; do
		[[ -n "${run[$lang]:-}" ]] || { echo "$lang: no smoke test here"; failed=1; continue; }
		smoke "$lang" || failed=1
	done
	return "$failed"
}

main "$@"
