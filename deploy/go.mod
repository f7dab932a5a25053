module github.com/codeexec/codeexec/deploy

go 1.26

replace (
	github.com/codeexec/codeexec/accounts => ../accounts
	github.com/codeexec/codeexec/edge => ../edge
	github.com/codeexec/codeexec/ledger => ../ledger
	github.com/codeexec/codeexec/runner => ../runner
	github.com/codeexec/codeexec/shared => ../shared
	github.com/codeexec/codeexec/shared/embedded => ../shared/embedded
)
