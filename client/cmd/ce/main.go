// Command ce is CodeExec's command-line client: ce run, ce languages, ce wallet, ce jobs,
// ce login. See client/README.md.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/codeexec/codeexec/client/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, cli.Env{
		Args: os.Args[1:], Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr,
		Getenv: os.Getenv, ConfigDir: os.UserConfigDir,
	})
	stop()
	os.Exit(code)
}
