// Command publisher is an example internal service of CodeExec: it submits a program for a
// user straight onto NATS JetStream with shared/publisher (no HTTP edge), waits for the
// result and prints the program's stdout on stdout, its stderr and a summary on stderr.
//
//	CODEEXEC_NATS_URL=nats://nats-1:4222 CODEEXEC_NATS_USER=publisher CODEEXEC_NATS_PASSWORD=... \
//	  go run ./deploy/examples/publisher -user <userId>
//
// NATS credentials come from CODEEXEC_NATS_USER and CODEEXEC_NATS_PASSWORD, or
// CODEEXEC_NATS_CREDS, never from the URL; CODEEXEC_REGION (default local) and
// CODEEXEC_LANGUAGES_FILE are read as the services read them. Exit status: 0 the program
// succeeded, 1 the platform or the connection failed, 2 bad usage or an invalid request,
// 3 the ledger refused the job (insufficient funds, no wallet), 4 the program ran and did
// not succeed.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/codeexec/codeexec/shared/config"
	"github.com/codeexec/codeexec/shared/languages"
	"github.com/codeexec/codeexec/shared/messages"
	"github.com/codeexec/codeexec/shared/natsconn"
	"github.com/codeexec/codeexec/shared/publisher"
)

// Exit statuses.
const (
	exitOK      = 0
	exitFailed  = 1
	exitUsage   = 2
	exitRefused = 3
	exitProgram = 4
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("publisher", flag.ContinueOnError)
	fs.SetOutput(stderr)
	user := fs.String("user", os.Getenv("CODEEXEC_EXAMPLE_USER_ID"), "the CodeExec user id to charge (env CODEEXEC_EXAMPLE_USER_ID)")
	language := fs.String("language", "python", "language name or alias")
	code := fs.String("code", `print("hello world")`, "the program")
	timeout := fs.Duration("timeout", time.Minute, "how long to wait for the result")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if *user == "" {
		fmt.Fprintln(stderr, "publisher: -user (or CODEEXEC_EXAMPLE_USER_ID) is required")
		return exitUsage
	}
	cfg, err := config.Load()
	if err != nil {
		fmt.Fprintf(stderr, "publisher: configuration: %v\n", err)
		return exitUsage
	}
	log := cfg.Logger(stderr)
	catalog, err := languages.Load(cfg.LanguagesFile)
	if err != nil {
		fmt.Fprintf(stderr, "publisher: %v\n", err)
		return exitUsage
	}
	// A command fails at once when NATS is unreachable, rather than retrying as services do.
	nc, err := natsconn.Connect(cfg.NATSURL, cfg.NATS, "codeexec-example-publisher", log, nats.RetryOnFailedConnect(false))
	if err != nil {
		fmt.Fprintf(stderr, "publisher: %v\n", err)
		return exitFailed
	}
	defer nc.Close()
	p, err := publisher.New(nc, publisher.Options{Region: cfg.Region, Languages: catalog, Log: log})
	if err != nil {
		fmt.Fprintf(stderr, "publisher: %v\n", err)
		return exitFailed
	}
	defer func() { _ = p.Close() }()

	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	r, err := p.Run(ctx, publisher.JobRequest{UserID: *user, Language: *language, Code: *code})
	var refused *publisher.RefusedError
	switch {
	case errors.As(err, &refused):
		fmt.Fprintf(stderr, "publisher: the ledger refused the job (%s): %s\n", refused.Code, refused.Message)
		return exitRefused
	case errors.Is(err, publisher.ErrInvalidRequest):
		fmt.Fprintf(stderr, "publisher: %v\n", err)
		return exitUsage
	case err != nil:
		fmt.Fprintf(stderr, "publisher: %v\n", err)
		return exitFailed
	}
	fmt.Fprint(stdout, r.Stdout)
	fmt.Fprint(stderr, r.Stderr)
	exit := "none"
	if r.ExitCode != nil {
		exit = fmt.Sprint(*r.ExitCode)
	}
	fmt.Fprintf(stderr, "job %s: %s, exit code %s, %d ms wall, %d ms CPU, %d bytes of memory, price %d micro-dollars\n",
		r.JobID, r.Status, exit, r.WallTimeMs, r.CPUTimeMs, r.MemoryBytes, r.PriceMicros)
	switch r.Status {
	case messages.StatusSucceeded:
		return exitOK
	case messages.StatusInternalError:
		fmt.Fprintf(stderr, "publisher: the platform failed to run the job (not charged): %s\n", r.ErrorMessage)
		return exitFailed
	}
	return exitProgram
}
