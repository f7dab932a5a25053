package sandbox_test

import (
	"strings"
	"testing"

	"github.com/codeexec/codeexec/shared/messages"
)

// Every language of the table: hello world with stdin, a failing exit code and, for
// compiled languages, a compile error.
func TestEveryLanguage(t *testing.T) {
	cases := []struct {
		lang, hello, exit3, broken string
	}{
		{"python", "print('hello ' + input())\n", "import sys\nsys.exit(3)\n", ""},
		{"javascript", "const s=require('fs').readFileSync(0,'utf8');console.log('hello '+s.trim());\n", "process.exit(3);\n", ""},
		{"ruby", "puts 'hello ' + gets.strip\n", "exit 3\n", ""},
		{"java", "import java.util.Scanner;\npublic class Main { public static void main(String[] a) { System.out.println(\"hello \" + new Scanner(System.in).nextLine()); } }\n",
			"public class Main { public static void main(String[] a) { System.exit(3); } }\n",
			"public class Main { public static void main(String[] a) { int x = \"no\"; } }\n"},
		{"go", "package main\nimport (\"bufio\";\"fmt\";\"os\")\nfunc main() { s, _ := bufio.NewReader(os.Stdin).ReadString('\\n'); fmt.Print(\"hello \" + s) }\n",
			"package main\nimport \"os\"\nfunc main() { os.Exit(3) }\n",
			"package main\nfunc main() { var x int = \"no\" }\n"},
		{"cpp", "#include <iostream>\n#include <string>\nint main() { std::string s; std::getline(std::cin, s); std::cout << \"hello \" << s << std::endl; }\n",
			"int main() { return 3; }\n",
			"int main() { int x = \"no\"; }\n"},
	}
	for _, c := range cases {
		t.Run(c.lang, func(t *testing.T) {
			h := newHarness(t, c.lang)
			out := h.run(t, c.lang, c.hello, "world\n", messages.Limits{})
			wantStatus(t, out, messages.StatusSucceeded)
			if out.Stdout != "hello world\n" {
				t.Errorf("stdout: got %q, want %q (stderr %q)", out.Stdout, "hello world\n", out.Stderr)
			}
			t.Logf("hello: wall %s cpu %s memory %.1f MiB", out.WallTime, out.CPUTime, float64(out.MemoryBytes)/(1<<20))

			out = h.run(t, c.lang, c.exit3, "", messages.Limits{})
			wantStatus(t, out, messages.StatusRuntimeError)
			if out.ExitCode == nil || *out.ExitCode != 3 {
				t.Errorf("exit code: got %v, want 3", out.ExitCode)
			}
			if c.broken == "" {
				return
			}
			out = h.run(t, c.lang, c.broken, "", messages.Limits{})
			wantStatus(t, out, messages.StatusCompileError)
			if !strings.Contains(out.CompileOutput, "main") && !strings.Contains(out.CompileOutput, "Main") {
				t.Errorf("compile output does not point at the code: %q", out.CompileOutput)
			}
		})
	}
}
