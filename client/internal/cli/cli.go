// Package cli is the ce command: it reads the command line, calls the API through package
// client, and turns answers into output and exit codes.
package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/codeexec/codeexec/client"
)

// Exit codes besides the program's own.
const (
	exitFailure  = 1   // a compile error, an output cut at its limit, a refused request
	exitUsage    = 2   // ce was called wrongly
	exitPlatform = 70  // the platform failed (internal_error, 5xx, unreachable)
	exitTimeout  = 124 // time_limit_exceeded, as timeout(1)
	exitMemory   = 137 // memory_limit_exceeded, as a SIGKILLed program
)

// maxRetryWait bounds how long ce waits as Retry-After asks (429, 503) before giving up.
const maxRetryWait = 30 * time.Second

// Env is what ce takes from its process.
type Env struct {
	Args           []string
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Getenv         func(string) string
	ConfigDir      func() (string, error)
}

const usage = `ce: CodeExec's command line

  ce [--url URL] run [-l LANG] [--stdin FILE|-] [--time 2s] [--memory MiB] [--json] FILE... [-- ARGS...]
  ce [--url URL] languages [--json]
  ce [--url URL] wallet [--json]
  ce [--url URL] jobs [--json] JOBID
  ce [--url URL] login [--key KEY | --email EMAIL]

run: the language comes from the first file's extension unless -l says it; several files
are sent together, the first one is the entry point. The program's stdout and stderr are
ce's; ce exits with the program's exit code, 124 on a time limit, 137 on a memory limit,
1 on a compile error, 70 when the platform failed.

login stores an API key (given with --key or read from stdin; with --email, ce logs in with
the password read from stdin and makes a new key) in the user's config dir, mode 0600.
CODEEXEC_URL and CODEEXEC_API_KEY override what login stored.
`

// Main runs ce and returns its exit code.
func Main(ctx context.Context, e Env) int {
	global := flag.NewFlagSet("ce", flag.ContinueOnError)
	global.SetOutput(e.Stderr)
	global.Usage = func() { fmt.Fprint(e.Stderr, usage) }
	urlFlag := global.String("url", "", "the CodeExec edge (default: CODEEXEC_URL, then the stored one, then "+DefaultURL+")")
	if err := global.Parse(e.Args); err != nil {
		return exitUsage
	}
	if global.NArg() == 0 {
		fmt.Fprint(e.Stderr, usage)
		return exitUsage
	}
	base, key, err := e.connection(*urlFlag)
	if err != nil {
		fmt.Fprintf(e.Stderr, "ce: %v\n", err)
		return exitFailure
	}
	opts := []client.Option{client.WithRetry(maxRetryWait)}
	if key != "" {
		opts = append(opts, client.WithAPIKey(key))
	}
	c, err := client.New(base, opts...)
	if err != nil {
		fmt.Fprintf(e.Stderr, "ce: %v\n", err)
		return exitUsage
	}
	cmd := command{Env: e, c: c, base: base}
	args := global.Args()[1:]
	switch global.Arg(0) {
	case "run":
		return cmd.run(ctx, args)
	case "languages":
		return cmd.languages(ctx, args)
	case "wallet":
		return cmd.wallet(ctx, args)
	case "jobs", "job":
		return cmd.jobs(ctx, args)
	case "login":
		return cmd.login(ctx, args)
	case "help":
		fmt.Fprint(e.Stdout, usage)
		return 0
	}
	fmt.Fprintf(e.Stderr, "ce: unknown command %q\n\n%s", global.Arg(0), usage)
	return exitUsage
}

type command struct {
	Env
	c    *client.Client
	base string
}

// flags parses args, in which flags and operands may mix; everything after "--" is
// returned apart, untouched.
func (cmd command) flags(fs *flag.FlagSet, args []string) (operands, rest []string, ok bool) {
	fs.SetOutput(cmd.Stderr)
	fs.Usage = func() { fmt.Fprint(cmd.Stderr, usage) }
	for i, a := range args {
		if a == "--" {
			args, rest = args[:i], args[i+1:]
			break
		}
	}
	for {
		if err := fs.Parse(args); err != nil {
			return nil, nil, false
		}
		args = fs.Args()
		if len(args) == 0 {
			return operands, rest, true
		}
		operands = append(operands, args[0])
		args = args[1:]
	}
}

// fail reports an error of a call and returns the exit code it means.
func (cmd command) fail(err error) int {
	var apiErr *client.Error
	switch {
	case errors.As(err, &apiErr):
		fmt.Fprintf(cmd.Stderr, "ce: %s (%d): %s\n", apiErr.Code, apiErr.Status, apiErr.Message)
		if apiErr.JobID != "" {
			fmt.Fprintf(cmd.Stderr, "ce: see the job with: ce jobs %s\n", apiErr.JobID)
		}
		if apiErr.Status == http.StatusUnauthorized {
			fmt.Fprintln(cmd.Stderr, "ce: log in with `ce login`, or set CODEEXEC_API_KEY")
		}
		if apiErr.Status >= 500 || apiErr.Status == http.StatusTooManyRequests {
			return exitPlatform
		}
		return exitFailure
	case errors.Is(err, context.Canceled):
		fmt.Fprintln(cmd.Stderr, "ce: interrupted")
		return exitPlatform
	}
	fmt.Fprintf(cmd.Stderr, "ce: %v\n", err)
	return exitPlatform
}

func (cmd command) printJSON(v any) int {
	enc := json.NewEncoder(cmd.Stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		fmt.Fprintf(cmd.Stderr, "ce: %v\n", err)
		return exitFailure
	}
	return 0
}

func (cmd command) languages(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("languages", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print the answer as JSON")
	region := fs.String("region", "", "the region to report availability for")
	if operands, _, ok := cmd.flags(fs, args); !ok || len(operands) > 0 {
		return exitUsage
	}
	list, err := cmd.c.Languages(ctx, *region)
	if err != nil {
		return cmd.fail(err)
	}
	if *asJSON {
		return cmd.printJSON(list)
	}
	tw := tabwriter.NewWriter(cmd.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "LANGUAGE\tVERSION\tAVAILABLE\tALIASES")
	for _, l := range list {
		fmt.Fprintf(tw, "%s\t%s\t%v\t%s\n", l.Language, l.Version, l.Available, strings.Join(l.Aliases, ", "))
	}
	tw.Flush()
	return 0
}

func (cmd command) wallet(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("wallet", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print the answer as JSON")
	if operands, _, ok := cmd.flags(fs, args); !ok || len(operands) > 0 {
		return exitUsage
	}
	w, err := cmd.c.Wallet(ctx)
	if err != nil {
		return cmd.fail(err)
	}
	if *asJSON {
		return cmd.printJSON(w)
	}
	fmt.Fprintf(cmd.Stdout, "balance  %s %s (%d micro-dollars, %d held)\nprice    %d micro-dollars per execution\n",
		w.Balance, w.Currency, w.BalanceMicros, w.HeldMicros, w.PriceMicros)
	return 0
}

func (cmd command) jobs(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("jobs", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print the answer as JSON")
	operands, _, ok := cmd.flags(fs, args)
	if !ok || len(operands) != 1 {
		fmt.Fprintln(cmd.Stderr, "ce: jobs takes one job id")
		return exitUsage
	}
	job, err := cmd.c.Job(ctx, operands[0])
	if err != nil {
		return cmd.fail(err)
	}
	if *asJSON {
		if code := cmd.printJSON(job); code != 0 || job.Result == nil {
			return code
		}
		return exitCode(*job.Result)
	}
	if job.Result == nil {
		fmt.Fprintf(cmd.Stdout, "job %s: %s\n", job.JobID, job.Status)
		return 0
	}
	return cmd.show(*job.Result)
}

func (cmd command) login(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("login", flag.ContinueOnError)
	key := fs.String("key", "", "the API key to store (default: read from stdin)")
	email := fs.String("email", "", "log in with this email and the password read from stdin, and store a new key")
	if operands, _, ok := cmd.flags(fs, args); !ok || len(operands) > 0 {
		return exitUsage
	}
	in := bufio.NewReader(cmd.Stdin)
	readLine := func(prompt string) (string, error) {
		fmt.Fprint(cmd.Stderr, prompt)
		line, err := in.ReadString('\n')
		if err != nil && (line == "" || !errors.Is(err, io.EOF)) {
			return "", fmt.Errorf("read %s: %w", strings.TrimSuffix(prompt, ": "), err)
		}
		return strings.TrimSpace(line), nil
	}
	var err error
	switch {
	case *email != "":
		*key, err = cmd.newKey(ctx, *email, readLine)
	case *key == "":
		*key, err = readLine("API key: ")
	}
	if err != nil {
		return cmd.fail(err)
	}
	if *key == "" {
		fmt.Fprintln(cmd.Stderr, "ce: no API key given")
		return exitUsage
	}
	c, err := client.New(cmd.base, client.WithAPIKey(*key), client.WithRetry(maxRetryWait))
	if err != nil {
		return cmd.fail(err)
	}
	me, err := c.Me(ctx)
	if err != nil {
		return cmd.fail(err)
	}
	path, err := cmd.saveSettings(settings{URL: cmd.base, APIKey: *key})
	if err != nil {
		return cmd.fail(err)
	}
	fmt.Fprintf(cmd.Stdout, "logged in to %s as %s (%s); key stored in %s\n", cmd.base, me.Username, me.Email, path)
	return 0
}

// newKey logs in with email and a password read from stdin, makes a key for ce, and ends
// the session.
func (cmd command) newKey(ctx context.Context, email string, readLine func(string) (string, error)) (string, error) {
	password, err := readLine("password: ")
	if err != nil {
		return "", err
	}
	c, err := client.New(cmd.base, client.WithRetry(maxRetryWait)) // a session of its own, no key
	if err != nil {
		return "", err
	}
	if _, err := c.Login(ctx, client.LoginRequest{Email: email, Password: password}); err != nil {
		return "", err
	}
	host, _ := os.Hostname()
	k, err := c.CreateKey(ctx, client.KeyCreateRequest{Name: strings.TrimSpace("ce " + host)})
	if lerr := c.Logout(ctx); err == nil && lerr != nil {
		return "", lerr
	}
	return k.APIKey, err
}
