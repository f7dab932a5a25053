package integration

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/codeexec/codeexec/shared/config"
)

// ceTool is the ce command built for a test, with the environment it runs in.
type ceTool struct {
	bin string
	env []string
}

// buildCE builds ce into a temporary dir; its settings go to a config dir of the test's own.
func buildCE(t *testing.T, base string) (ceTool, string) {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "ce")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/codeexec/codeexec/client/cmd/ce").CombinedOutput(); err != nil {
		t.Fatalf("build ce: %v\n%s", err, out)
	}
	configDir := filepath.Join(dir, "config")
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "XDG_CONFIG_HOME=" + configDir, "CODEEXEC_URL=" + base}
	return ceTool{bin: bin, env: env}, configDir
}

type ceRun struct {
	stdout, stderr string
	code           int
}

// run runs ce with args, stdin and extra environment, in dir.
func (c ceTool) run(t *testing.T, dir, stdin string, env []string, args ...string) ceRun {
	t.Helper()
	cmd := exec.Command(c.bin, args...)
	cmd.Dir = dir
	cmd.Env = append(append([]string{}, c.env...), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("ce %v: %v", args, err)
	}
	return ceRun{stdout: stdout.String(), stderr: stderr.String(), code: cmd.ProcessState.ExitCode()}
}

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, code := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(code), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestCLI runs the built ce against a real all-in-one: login and its settings file, a
// two-file project with stdin and arguments, the exit codes, --json, jobs and languages.
func TestCLI(t *testing.T) {
	inst := startMesh(t, t.TempDir(), func(c *config.Config) {
		c.Languages = []string{"python", "cpp"}
		c.FreeCreditMicros = 1_000_000
	})
	user := registerUser(t, inst.URL)
	ce, configDir := buildCE(t, inst.URL)
	work := t.TempDir()
	writeFiles(t, work, map[string]string{
		"main.py": "import sys, util\nprint(util.greet(sys.stdin.readline().strip()), sys.argv[1:])\n" +
			"print('a warning', file=sys.stderr)\nsys.exit(3 if '--fail' in sys.argv else 0)\n",
		"util.py":   "def greet(name):\n    return 'hello, ' + name\n",
		"name.txt":  "file\n",
		"spin.py":   "while True:\n    pass\n",
		"big.py":    "x = bytearray(300 << 20)\nprint(len(x))\n",
		"bad.cpp":   "int main() { return nope; }\n",
		"notes.txt": "not a program\n",
	})

	t.Run("login stores the key for its owner only", func(t *testing.T) {
		r := ce.run(t, work, user.APIKey+"\n", nil, "login")
		if r.code != 0 || !strings.Contains(r.stdout, "logged in") {
			t.Fatalf("ce login: exit %d, %q %q; want 0, logged in", r.code, r.stdout, r.stderr)
		}
		path := filepath.Join(configDir, "codeexec", "config.json")
		info, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if mode := info.Mode().Perm(); mode != 0o600 {
			t.Errorf("%s: mode %o, want 600", path, mode)
		}
		if data, _ := os.ReadFile(path); !strings.Contains(string(data), user.APIKey) {
			t.Errorf("%s does not hold the key", path)
		}
		if r := ce.run(t, work, "", nil, "wallet"); r.code != 0 || !strings.Contains(r.stdout, "1.00 USD") {
			t.Errorf("ce wallet with the stored key: exit %d, %q %q; want 0 and 1.00 USD", r.code, r.stdout, r.stderr)
		}
	})

	t.Run("login with email and password stores a new key", func(t *testing.T) {
		other := registerUser(t, inst.URL)
		r := ce.run(t, work, "a long password\n", nil, "login", "--email", other.Email)
		if r.code != 0 {
			t.Fatalf("ce login --email: exit %d, %q %q; want 0", r.code, r.stdout, r.stderr)
		}
		data, err := os.ReadFile(filepath.Join(configDir, "codeexec", "config.json"))
		if err != nil {
			t.Fatal(err)
		}
		var stored struct{ APIKey string }
		if err := json.Unmarshal(data, &stored); err != nil || stored.APIKey == "" || stored.APIKey == other.APIKey {
			t.Fatalf("stored settings %s: want a new key of %s", data, other.Email)
		}
		if r := ce.run(t, work, "", []string{"CODEEXEC_API_KEY=" + stored.APIKey}, "wallet"); r.code != 0 {
			t.Errorf("ce wallet with the new key: exit %d, %q", r.code, r.stderr)
		}
		// Back to the first user for what follows.
		if r := ce.run(t, work, "", nil, "login", "--key", user.APIKey); r.code != 0 {
			t.Fatalf("ce login --key: exit %d, %q", r.code, r.stderr)
		}
	})

	for _, tc := range []struct {
		name           string
		stdin          string
		env            []string
		args           []string
		code           int
		stdout, stderr string
	}{
		{"two files, stdin from a file, arguments", "", nil, []string{"run", "main.py", "util.py", "--stdin", "name.txt", "--", "-v", "x"},
			0, "hello, file ['-v', 'x']\n", "a warning\n"},
		{"stdin from ce's own stdin, the program's exit code", "world\n", nil, []string{"run", "--stdin", "-", "main.py", "util.py", "--", "--fail"},
			3, "hello, world ['--fail']\n", "ce: runtime_error (exit code 3)"},
		{"a time limit exits 124", "", nil, []string{"run", "--time", "1s", "spin.py"}, 124, "", "ce: time_limit_exceeded"},
		{"a memory limit exits 137", "", nil, []string{"run", "--memory", "64", "big.py"}, 137, "", "ce: memory_limit_exceeded"},
		{"a compile error exits 1 with the compiler's words", "", nil, []string{"run", "bad.cpp"}, 1, "", "nope"},
		{"the language from -l", "", nil, []string{"run", "-l", "python", "notes.txt"}, 1, "", "SyntaxError"},
		{"an unknown extension asks for -l", "", nil, []string{"run", "notes.txt"}, 2, "", "say it with -l"},
		{"CODEEXEC_API_KEY overrides the stored key", "", []string{"CODEEXEC_API_KEY=ce_not_a_key"}, []string{"wallet"}, 1, "", "invalid_api_key"},
		{"an unreachable platform exits 70", "", []string{"CODEEXEC_URL=http://127.0.0.1:1"}, []string{"wallet"}, 70, "", "connection refused"},
		{"languages", "", nil, []string{"languages"}, 0, "python", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := ce.run(t, work, tc.stdin, tc.env, tc.args...)
			if r.code != tc.code || !strings.Contains(r.stdout, tc.stdout) || !strings.Contains(r.stderr, tc.stderr) {
				t.Errorf("ce %v: exit %d, stdout %q, stderr %q; want exit %d, stdout with %q, stderr with %q",
					tc.args, r.code, r.stdout, r.stderr, tc.code, tc.stdout, tc.stderr)
			}
		})
	}

	t.Run("--json prints the answer, and jobs finds the job again", func(t *testing.T) {
		r := ce.run(t, work, "json\n", nil, "run", "--json", "--stdin", "-", "main.py", "util.py")
		var answer struct {
			Succeeded bool `json:"succeeded"`
			Result    struct {
				JobID         string `json:"jobId"`
				RunTimeStatus string `json:"runTimeStatus"`
				Stdout        string `json:"stdout"`
				Stderr        string `json:"stderr"`
			} `json:"result"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &answer); err != nil || r.code != 0 {
			t.Fatalf("ce run --json: exit %d, %v in %q", r.code, err, r.stdout)
		}
		if !answer.Succeeded || answer.Result.Stdout != "hello, json []\n" || answer.Result.Stderr != "a warning\n" {
			t.Errorf("ce run --json: got %+v, want the program's output", answer)
		}
		j := ce.run(t, work, "", nil, "jobs", answer.Result.JobID)
		if j.code != 0 || j.stdout != "hello, json []\n" || j.stderr != "a warning\n" {
			t.Errorf("ce jobs %s: exit %d, %q %q; want 0 and the job's output", answer.Result.JobID, j.code, j.stdout, j.stderr)
		}
	})
}
