package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/codeexec/codeexec/client"
)

// languageOf names the language of a file by its extension ("" when unknown).
func languageOf(filename string) string {
	switch strings.ToLower(filepath.Ext(filename)) {
	case ".py":
		return "python"
	case ".js", ".mjs", ".cjs":
		return "javascript"
	case ".java":
		return "java"
	case ".go":
		return "go"
	case ".cpp", ".cc", ".cxx", ".c++", ".hpp", ".h":
		return "cpp"
	case ".rb":
		return "ruby"
	}
	return ""
}

func (cmd command) run(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	lang := fs.String("l", "", "the language (default: from the first file's extension)")
	stdinFrom := fs.String("stdin", "", "a file to give the program as stdin, or - for ce's own stdin")
	asJSON := fs.Bool("json", false, "print the answer as JSON instead of the program's output")
	timeLimit := fs.Duration("time", 0, "the run's time limit, below the language's default (e.g. 2s)")
	memoryMiB := fs.Int64("memory", 0, "the run's memory limit in MiB, below the language's default")
	files, programArgs, ok := cmd.flags(fs, args)
	if !ok {
		return exitUsage
	}
	if len(files) == 0 {
		fmt.Fprintln(cmd.Stderr, "ce: run takes at least one file")
		return exitUsage
	}
	if *lang == "" {
		if *lang = languageOf(files[0]); *lang == "" {
			fmt.Fprintf(cmd.Stderr, "ce: cannot tell the language of %s from its extension; say it with -l\n", files[0])
			return exitUsage
		}
	}
	opts := client.RunOptions{Args: programArgs}
	if *timeLimit > 0 || *memoryMiB > 0 {
		opts.Limits = &client.Limits{RunTimeMs: timeLimit.Milliseconds(), MemoryBytes: *memoryMiB << 20}
	}
	if *stdinFrom != "" {
		data, err := cmd.readInput(*stdinFrom)
		if err != nil {
			fmt.Fprintf(cmd.Stderr, "ce: %v\n", err)
			return exitUsage
		}
		opts.Stdin = string(data)
	}
	var sources []client.File
	for i, name := range files {
		code, err := os.ReadFile(name)
		if err != nil {
			fmt.Fprintf(cmd.Stderr, "ce: %v\n", err)
			return exitUsage
		}
		// Files keep their paths relative to the first file's directory.
		rel, err := filepath.Rel(filepath.Dir(files[0]), name)
		if err != nil || strings.HasPrefix(rel, "..") {
			rel = filepath.Base(name)
		}
		sources = append(sources, client.File{Filename: filepath.ToSlash(rel), Code: string(code), IsEntryPoint: i == 0})
	}
	var (
		answer client.Execution
		err    error
	)
	if len(sources) == 1 {
		answer, err = cmd.c.ExecuteV1(ctx, client.ExecuteV1Request{Language: *lang, Code: sources[0].Code, RunOptions: opts})
	} else {
		answer, err = cmd.c.ExecuteV2(ctx, client.ExecuteV2Request{Language: *lang, Files: sources, RunOptions: opts})
	}
	if err != nil {
		return cmd.fail(err)
	}
	if answer.Result == nil {
		fmt.Fprintf(cmd.Stderr, "ce: no result in the answer (job %s)\n", answer.JobID)
		return exitPlatform
	}
	if *asJSON {
		if code := cmd.printJSON(answer); code != 0 {
			return code
		}
		return exitCode(*answer.Result)
	}
	return cmd.show(*answer.Result)
}

func (cmd command) readInput(from string) ([]byte, error) {
	if from == "-" {
		data, err := io.ReadAll(cmd.Stdin)
		if err != nil {
			return nil, fmt.Errorf("read stdin: %w", err)
		}
		return data, nil
	}
	return os.ReadFile(from)
}

// show writes a result's output to ce's stdout and stderr, its status to stderr unless it
// succeeded, and returns the exit code it means.
func (cmd command) show(r client.Result) int {
	if r.CompileOutput != nil && *r.CompileOutput != "" {
		io.WriteString(cmd.Stderr, *r.CompileOutput)
	}
	io.WriteString(cmd.Stdout, r.Stdout)
	io.WriteString(cmd.Stderr, r.Stderr)
	if r.RunTimeStatus != client.StatusSucceeded {
		line := "ce: " + string(r.RunTimeStatus)
		if r.ExitCode != nil {
			line += fmt.Sprintf(" (exit code %d)", *r.ExitCode)
		}
		if r.ErrorMessage != nil && *r.ErrorMessage != "" {
			line += ": " + *r.ErrorMessage
		}
		fmt.Fprintln(cmd.Stderr, line)
	}
	return exitCode(r)
}

// exitCode is what ce exits with after a result.
func exitCode(r client.Result) int {
	switch r.RunTimeStatus {
	case client.StatusSucceeded, client.StatusRuntimeError:
		if r.ExitCode != nil && *r.ExitCode > 0 && *r.ExitCode < 256 {
			return *r.ExitCode
		}
		if r.RunTimeStatus == client.StatusSucceeded {
			return 0
		}
		if n, ok := signalNumber(r.Signal); ok {
			return 128 + n
		}
		return exitFailure
	case client.StatusTimeLimit:
		return exitTimeout
	case client.StatusMemoryLimit:
		return exitMemory
	case client.StatusInternalError:
		return exitPlatform
	}
	return exitFailure // compile_error, output_limit_exceeded
}

// signalNumber is the Linux number of a signal that ends programs, for 128+n.
func signalNumber(name string) (int, bool) {
	names := []string{1: "SIGHUP", 2: "SIGINT", 3: "SIGQUIT", 4: "SIGILL", 5: "SIGTRAP", 6: "SIGABRT",
		7: "SIGBUS", 8: "SIGFPE", 9: "SIGKILL", 10: "SIGUSR1", 11: "SIGSEGV", 12: "SIGUSR2", 13: "SIGPIPE",
		14: "SIGALRM", 15: "SIGTERM", 24: "SIGXCPU", 25: "SIGXFSZ", 31: "SIGSYS"}
	for n, s := range names {
		if s != "" && s == name {
			return n, true
		}
	}
	return 0, false
}
