package integration

import (
	"strings"
	"testing"

	"github.com/codeexec/codeexec/shared/config"
)

// file is one entry of a v2 execute request.
type file struct {
	Filename     string `json:"filename"`
	Code         string `json:"code"`
	IsEntryPoint bool   `json:"isEntryPoint,omitempty"`
}

// v2Answer is an execute answer with the fields these tests read beyond result.
type v2Answer struct {
	Succeeded bool `json:"succeeded"`
	JobID     string
	Result    struct {
		result
		CompileOutput *string `json:"compileOutput"`
	} `json:"result"`
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func executeFiles(t *testing.T, base, key, lang, stdin string, files ...file) v2Answer {
	t.Helper()
	var a v2Answer
	status, body := call(t, base, "POST", "/api/v2/execute", key, map[string]any{
		"language": lang, "stdin": stdin, "files": files,
	}, &a)
	if status != 200 || !a.Succeeded {
		t.Fatalf("%s: got %d %s, want 200 succeeded", lang, status, body)
	}
	return a
}

// langCase is what every language must do over HTTP.
type langCase struct {
	lang string
	// hello reads a name from stdin and prints "hello <name>".
	hello []file
	// exit3 exits with code 3.
	exit3 []file
	// projects are multi-file programs printing "sum 5" (util/helper add 2+3).
	projects map[string][]file
	// broken does not compile (languages with a compile step only); compilerSays is in
	// its compileOutput.
	broken       []file
	compilerSays string
}

func entry(name, code string) file { return file{Filename: name, Code: code, IsEntryPoint: true} }

var langCases = []langCase{
	{
		lang:  "python",
		hello: []file{entry("main.py", "print('hello ' + input())")},
		exit3: []file{entry("main.py", "import sys\nsys.exit(3)")},
		projects: map[string][]file{
			"sibling module": {
				entry("main.py", "import util\nprint('sum', util.add(2, 3))"),
				{Filename: "util.py", Code: "def add(a, b):\n    return a + b\n"},
			},
			"module in a sub-directory": {
				entry("main.py", "from pkg import util\nfrom pkg.deep.more import K\nprint('sum', util.add(2, K))"),
				{Filename: "pkg/util.py", Code: "def add(a, b):\n    return a + b\n"},
				{Filename: "pkg/deep/more.py", Code: "K = 3\n"},
			},
		},
	},
	{
		lang:  "javascript",
		hello: []file{entry("main.js", "const fs = require('fs');\nconsole.log('hello ' + fs.readFileSync(0, 'utf8').trim());")},
		exit3: []file{entry("main.js", "process.exit(3);")},
		projects: map[string][]file{
			"require sibling": {
				entry("main.js", "const util = require('./util');\nconsole.log('sum', util.add(2, 3));"),
				{Filename: "util.js", Code: "module.exports.add = (a, b) => a + b;\n"},
			},
			"require from a sub-directory": {
				entry("main.js", "const { add } = require('./lib/util');\nconsole.log('sum', add(2, 3));"),
				{Filename: "lib/util.js", Code: "exports.add = (a, b) => a + b;\n"},
			},
		},
	},
	{
		lang: "java",
		hello: []file{entry("Main.java", `import java.util.Scanner;
public class Main {
    public static void main(String[] args) {
        System.out.println("hello " + new Scanner(System.in).nextLine());
    }
}`)},
		exit3: []file{entry("Main.java", "public class Main { public static void main(String[] a) { System.exit(3); } }")},
		projects: map[string][]file{
			"Main with a Util class": {
				entry("Main.java", "public class Main { public static void main(String[] a) { System.out.println(\"sum \" + Util.add(2, 3)); } }"),
				{Filename: "Util.java", Code: "public class Util { static int add(int a, int b) { return a + b; } }"},
			},
			"entry point App, not Main": {
				{Filename: "Helper.java", Code: "class Helper { static int add(int a, int b) { return a + b; } }"},
				entry("App.java", "public class App { public static void main(String[] a) { System.out.println(\"sum \" + Helper.add(2, 3)); } }"),
				{Filename: "util/Adder.java", Code: "package util; public class Adder { public static int add(int a, int b) { return a + b; } }"},
			},
			"class from a package in a sub-directory": {
				entry("Main.java", "import util.Adder;\npublic class Main { public static void main(String[] a) { System.out.println(\"sum \" + Adder.add(2, 3)); } }"),
				{Filename: "util/Adder.java", Code: "package util;\npublic class Adder { public static int add(int a, int b) { return a + b; } }"},
			},
		},
		broken:       []file{entry("Main.java", "public class Main { public static void main(String[] a) { int x = \"no\"; } }")},
		compilerSays: "incompatible types",
	},
	{
		lang: "go",
		hello: []file{entry("main.go", `package main

import (
	"bufio"
	"fmt"
	"os"
)

func main() {
	s := bufio.NewScanner(os.Stdin)
	s.Scan()
	fmt.Println("hello " + s.Text())
}`)},
		exit3: []file{entry("main.go", "package main\n\nimport \"os\"\n\nfunc main() { os.Exit(3) }\n")},
		projects: map[string][]file{
			"several files of package main": {
				entry("main.go", "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"sum\", add(2, three)) }\n"),
				{Filename: "util.go", Code: "package main\n\nfunc add(a, b int) int { return a + b }\n"},
				{Filename: "consts.go", Code: "package main\n\nconst three = 3\n"},
			},
		},
		broken:       []file{entry("main.go", "package main\n\nfunc main() { undefinedThing() }\n")},
		compilerSays: "undefined",
	},
	{
		lang: "cpp",
		hello: []file{entry("main.cpp", `#include <iostream>
#include <string>
int main() { std::string n; std::getline(std::cin, n); std::cout << "hello " << n << std::endl; }`)},
		exit3: []file{entry("main.cpp", "int main() { return 3; }")},
		projects: map[string][]file{
			"headers and several .cpp files": {
				entry("main.cpp", "#include <iostream>\n#include \"util.h\"\n#include \"lib/three.h\"\nint main() { std::cout << \"sum \" << add(2, three()) << std::endl; }\n"),
				{Filename: "util.h", Code: "#pragma once\nint add(int a, int b);\n"},
				{Filename: "util.cpp", Code: "#include \"util.h\"\nint add(int a, int b) { return a + b; }\n"},
				{Filename: "lib/three.h", Code: "#pragma once\nint three();\n"},
				{Filename: "lib/three.cpp", Code: "#include \"three.h\"\nint three() { return 3; }\n"},
			},
		},
		broken:       []file{entry("main.cpp", "int main() { return nope; }")},
		compilerSays: "nope",
	},
	{
		lang:  "ruby",
		hello: []file{entry("main.rb", "puts 'hello ' + gets.strip")},
		exit3: []file{entry("main.rb", "exit 3")},
		projects: map[string][]file{
			"require_relative sibling": {
				entry("main.rb", "require_relative 'util'\nputs \"sum #{Util.add(2, 3)}\""),
				{Filename: "util.rb", Code: "module Util\n  def self.add(a, b) = a + b\nend\n"},
			},
			"require_relative from a sub-directory": {
				entry("main.rb", "require_relative 'lib/util'\nputs \"sum #{Util.add(2, 3)}\""),
				{Filename: "lib/util.rb", Code: "module Util\n  def self.add(a, b)\n    a + b\n  end\nend\n"},
			},
		},
	},
}

// TestLanguagesOverHTTP runs every language through POST /api/v2/execute: hello world from
// stdin, exit code 3, multi-file projects and, where there is a compiler, a compile error.
func TestLanguagesOverHTTP(t *testing.T) {
	var names []string
	for _, lc := range langCases {
		names = append(names, lc.lang)
	}
	mesh := startMesh(t, t.TempDir(), func(c *config.Config) {
		c.Languages = names
		c.RunnerSlots = 4
		c.PoolSize = 1
		c.FreeCreditMicros = 1_000_000_000
		c.RateBurst = 1000
		c.RatePerSec = 1000
		c.MaxConcurrent = 64
	})
	user := registerUser(t, mesh.URL)

	for _, lc := range langCases {
		t.Run(lc.lang, func(t *testing.T) {
			t.Parallel()
			t.Run("hello from stdin", func(t *testing.T) {
				r := executeFiles(t, mesh.URL, user.APIKey, lc.lang, "world\n", lc.hello...).Result
				if r.RunTimeStatus != "succeeded" || r.Stdout != "hello world\n" || r.ExitCode == nil || *r.ExitCode != 0 {
					t.Fatalf("got %q stdout %q stderr %q compile %v, want succeeded with %q",
						r.RunTimeStatus, r.Stdout, r.Stderr, str(r.CompileOutput), "hello world\n")
				}
				if r.WallTimeMs <= 0 || r.MemoryBytes <= 0 {
					t.Errorf("usage not measured: wall %d ms, memory %d bytes", r.WallTimeMs, r.MemoryBytes)
				}
			})
			t.Run("exit code 3", func(t *testing.T) {
				r := executeFiles(t, mesh.URL, user.APIKey, lc.lang, "", lc.exit3...).Result
				if r.RunTimeStatus != "runtime_error" || r.ExitCode == nil || *r.ExitCode != 3 {
					t.Fatalf("got %q exit code %v stderr %q compile %v, want runtime_error with exit code 3",
						r.RunTimeStatus, r.ExitCode, r.Stderr, str(r.CompileOutput))
				}
			})
			for name, files := range lc.projects {
				t.Run(name, func(t *testing.T) {
					r := executeFiles(t, mesh.URL, user.APIKey, lc.lang, "", files...).Result
					if r.RunTimeStatus != "succeeded" || strings.TrimSpace(r.Stdout) != "sum 5" {
						t.Fatalf("got %q stdout %q stderr %q compile %v, want succeeded with \"sum 5\"",
							r.RunTimeStatus, r.Stdout, r.Stderr, str(r.CompileOutput))
					}
				})
			}
			if lc.broken != nil {
				t.Run("compile error", func(t *testing.T) {
					r := executeFiles(t, mesh.URL, user.APIKey, lc.lang, "", lc.broken...).Result
					if r.RunTimeStatus != "compile_error" || r.CompileOutput == nil || !strings.Contains(*r.CompileOutput, lc.compilerSays) {
						t.Fatalf("got %q compile output %v, want compile_error mentioning %q", r.RunTimeStatus, str(r.CompileOutput), lc.compilerSays)
					}
					if r.Stdout != "" {
						t.Errorf("a program that did not compile printed %q", r.Stdout)
					}
				})
			}
		})
	}
}

func str(p *string) string {
	if p == nil {
		return "<nil>"
	}
	return *p
}
