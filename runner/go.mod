module github.com/codeexec/codeexec/runner

go 1.26

replace github.com/codeexec/codeexec/shared => ../shared

replace github.com/codeexec/codeexec/shared/embedded => ../shared/embedded
