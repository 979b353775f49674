// Command render-keda-e2e renders the YAML templates of KEDA's end-to-end tests into the
// committed corpus tests/keda_e2e/ (one file per KEDA test file), so that our unit tests can
// load KEDA's own objects without Go, network or the KEDA module at test time.
//
// KEDA's e2e tests declare their objects as text/template constants and fill them with a
// templateData struct built from package constants and variables. The tests themselves
// cannot be run here (they need a cluster and cloud credentials), so this program reads
// them as source: it evaluates the constants, variables and the templateData literal with
// a small evaluator (eval.go: literals, +, fmt.Sprintf, base64, strconv, strings), follows
// where the test applies each template and with which data (apply.go, data.go: the fields a
// test function sets first, a loop's rows, simple conditions), and renders every template
// with Go's own text/template, exactly as the test helper does. A value only known when the
// test runs (an environment variable, a random number, a cloud resource) becomes a
// placeholder, listed in the header of the file it appears in.
//
//	cd hack/render-keda-e2e && go run . [-keda DIR] [-out DIR]
//
// Without -keda the module is found with `go mod download -json`, as
// hack/fetch-go-module-file.sh does.
package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"go/ast"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"text/template"
)

const (
	kedaModule  = "github.com/kedacore/keda/v2"
	kedaVersion = "2.20.2"
)

// keptKinds are the objects a ScaledObject or ScaledJob can depend on in standalone mode.
var keptKinds = map[string]bool{
	"ScaledObject": true, "ScaledJob": true, "TriggerAuthentication": true,
	"ClusterTriggerAuthentication": true, "Secret": true, "ConfigMap": true,
	"Deployment": true, "StatefulSet": true, "ServiceAccount": true, // pod identity reads its annotations
}

func main() {
	keda := flag.String("keda", "", "KEDA module directory (default: go mod download)")
	out := flag.String("out", "../../tests/keda_e2e", "corpus directory to (re)write (default: from hack/render-keda-e2e)")
	flag.Parse()
	dir := *keda
	if dir == "" {
		var err error
		if dir, err = downloadModule(); err != nil {
			fail(err)
		}
	}
	if err := run(dir, *out); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "render-keda-e2e:", err)
	os.Exit(1)
}

func downloadModule() (string, error) {
	tmp, err := os.MkdirTemp("", "render-keda-e2e")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	cmd := exec.Command("go", "mod", "download", "-json", kedaModule+"@v"+kedaVersion)
	cmd.Dir = tmp // outside any module: a plain download
	cmd.Env = append(os.Environ(), "GOTOOLCHAIN=local", "GOWORK=off", "GOFLAGS=-mod=mod")
	cmd.Stderr = os.Stderr
	raw, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go mod download %s@v%s: %w", kedaModule, kedaVersion, err)
	}
	var info struct{ Dir, Error string }
	if err := json.Unmarshal(raw, &info); err != nil {
		return "", err
	}
	if info.Dir == "" {
		return "", fmt.Errorf("go mod download: %s", info.Error)
	}
	return info.Dir, nil
}

// run renders every test file under <keda>/tests and rewrites out's *.yaml files; a file
// KEDA no longer has disappears from the corpus.
func run(keda, out string) error {
	var files []string
	err := filepath.WalkDir(filepath.Join(keda, "tests"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, "_test.go") {
			files = append(files, p)
		}
		return err
	})
	if err != nil {
		return err
	}
	sort.Strings(files)
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	old, _ := filepath.Glob(filepath.Join(out, "*.yaml"))
	for _, p := range old {
		if err := os.Remove(p); err != nil {
			return err
		}
	}
	loader := newLoader(keda)
	written, docs := 0, 0
	for _, path := range files {
		rel, _ := filepath.Rel(keda, path)
		rel = filepath.ToSlash(rel)
		r, err := renderFile(loader, path, rel)
		if err != nil {
			return fmt.Errorf("%s: %w", rel, err)
		}
		if !r.scales() {
			continue // nothing a ScaledObject or ScaledJob test could use
		}
		name := strings.ReplaceAll(strings.TrimSuffix(strings.TrimPrefix(rel, "tests/"), ".go"), "/", "__") + ".yaml"
		if err := os.WriteFile(filepath.Join(out, name), r.bytes(), 0o644); err != nil {
			return err
		}
		written++
		docs += len(r.docs)
	}
	fmt.Fprintf(os.Stderr, "render-keda-e2e: %d files, %d documents from KEDA v%s in %s\n", written, docs, kedaVersion, out)
	return nil
}

type document struct {
	template string
	groups   []string // where the test creates it with others: a template list, or a function
	data     string   // the data it was rendered with
	text     string
}

type rendering struct {
	text     string
	note     string
	contexts []string
}

type rendered struct {
	source       string
	dataFrom     string
	placeholders []string
	failures     []string
	docs         []document
}

func (r *rendered) scales() bool {
	for _, d := range r.docs {
		if m := kindLine.FindStringSubmatch(d.text); m != nil && strings.HasPrefix(m[1], "Scaled") {
			return true
		}
	}
	return false
}

func (r *rendered) bytes() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# KEDA v%s %s, rendered by hack/render-keda-e2e (do not edit; see README.md).\n", kedaVersion, r.source)
	fmt.Fprintf(&b, "# Template data: %s.\n", r.dataFrom)
	for _, p := range r.placeholders {
		fmt.Fprintf(&b, "# Placeholder (known only when the test runs): %s\n", p)
	}
	for _, f := range r.failures {
		fmt.Fprintf(&b, "# Not rendered: %s\n", f)
	}
	for _, d := range r.docs {
		fmt.Fprintf(&b, "---\n# template: %s\n", d.template)
		if len(d.groups) > 0 {
			fmt.Fprintf(&b, "# created with: %s\n", strings.Join(d.groups, ", "))
		}
		if d.data != "" {
			fmt.Fprintf(&b, "# data: %s\n", d.data)
		}
		fmt.Fprintf(&b, "%s\n", d.text)
	}
	return b.Bytes()
}

var (
	docSeparator = regexp.MustCompile(`(?m)^---[ \t]*$`)
	kindLine     = regexp.MustCompile(`(?m)^kind:[ \t]*["']?([A-Za-z]+)`)
	anyKind      = regexp.MustCompile(`(?m)^kind:`) // before rendering: kind: {{.Kind}}
	fieldRef     = regexp.MustCompile(`\{\{[^}]*?\.([A-Z][A-Za-z0-9_]*)`)
)

func renderFile(l *loader, path, rel string) (*rendered, error) {
	pkg, err := l.pkgOf(path)
	if err != nil {
		return nil, err
	}
	r := &rendered{source: rel}
	// A test that loops over a literal table (`for _, n := range []int{1, 10}`) applies its
	// templates once per row: the file is evaluated once per row, every loop taking that
	// row (or its last), and each distinct output kept once.
	type outputs struct {
		list []*rendering
		seen map[string]*rendering
	}
	byTemplate := map[string]*outputs{}
	var order []string
	placeholders := map[string]bool{}
	failures := map[string]bool{}
	rows := loopRows(pkg.files[path])
	for row := 0; row < rows; row++ {
		ev := newEvaluator(l, pkg)
		ev.row = row
		datas := ev.dataCandidates(path)
		if row == 0 {
			r.dataFrom = describe(datas)
		}
		applied := ev.applications(path, datas)
		for _, t := range ev.templates(path) {
			out, ok := byTemplate[t.name]
			if !ok {
				out = &outputs{seen: map[string]*rendering{}}
				byTemplate[t.name] = out
				order = append(order, t.name)
			}
			tmpl, err := template.New(t.name).Parse(t.text)
			if err != nil {
				failures[fmt.Sprintf("%s: %v", t.name, err)] = true
				continue
			}
			base := chooseData(datas, t.text)
			apps := applied[t.name]
			if len(apps) == 0 {
				apps = []application{{}}
			}
			// One rendering per distinct output, with every context that yields it.
			for _, a := range apps {
				data := base
				if a.data != nil {
					data = a.data
				}
				var values map[string]any
				if data != nil {
					values = data.values
				}
				var b bytes.Buffer
				if err := tmpl.Execute(&b, values); err != nil {
					failures[fmt.Sprintf("%s: %v", t.name, err)] = true
					continue
				}
				o, ok := out.seen[b.String()]
				if !ok {
					o = &rendering{text: b.String()}
					if a.data != nil {
						o.note = a.data.from
					}
					out.seen[b.String()] = o
					out.list = append(out.list, o)
				}
				if a.context != "" && !slices.Contains(o.contexts, a.context) {
					o.contexts = append(o.contexts, a.context)
				}
			}
		}
		for _, p := range ev.placeholderList() {
			placeholders[p] = true
		}
	}
	for _, name := range order {
		for _, o := range byTemplate[name].list {
			r.addDocs(name, o.contexts, o.note, o.text)
		}
	}
	r.placeholders = usedPlaceholders(slices.Sorted(maps.Keys(placeholders)), r.docs)
	r.failures = slices.Sorted(maps.Keys(failures))
	return r, nil
}

var base64Token = regexp.MustCompile(`[A-Za-z0-9+/]{8,}={0,2}`)

// usedPlaceholders keeps the placeholders the documents show, as they are or base64-encoded
// (a Secret's data): the evaluator also names the unknowns it only looked at.
func usedPlaceholders(listed []string, docs []document) []string {
	var text strings.Builder
	for _, d := range docs {
		text.WriteString(d.text + "\n")
		for _, tok := range base64Token.FindAllString(d.text, -1) {
			if raw, err := base64.StdEncoding.DecodeString(tok); err == nil {
				text.Write(raw)
				text.WriteString("\n")
			}
		}
	}
	var out []string
	for _, p := range listed {
		value, _, _ := strings.Cut(p, " = ")
		shown := regexp.MustCompile(regexp.QuoteMeta(value) + `([^a-z0-9-]|$)`)
		if !strings.HasPrefix(value, "placeholder-") || shown.MatchString(text.String()) {
			out = append(out, p)
		}
	}
	return out
}

func describe(datas []*dataValue) string {
	if len(datas) == 0 {
		return "no templateData literal; every field is its zero value"
	}
	var from []string
	for _, d := range datas {
		from = append(from, d.from)
	}
	return strings.Join(from, "; ")
}

// loopRows is the most rows a loop of the file ranges over when they are written in it
// (a literal, or a variable assigned one), at least 1.
func loopRows(f *ast.File) int {
	rows := 1
	literals := map[string]int{}
	ast.Inspect(f, func(n ast.Node) bool {
		if a, ok := n.(*ast.AssignStmt); ok && len(a.Lhs) == len(a.Rhs) {
			for i, lhs := range a.Lhs {
				if id, ok := lhs.(*ast.Ident); ok {
					if cl, ok := a.Rhs[i].(*ast.CompositeLit); ok {
						literals[id.Name] = len(cl.Elts)
					}
				}
			}
		}
		if rs, ok := n.(*ast.RangeStmt); ok {
			switch x := rs.X.(type) {
			case *ast.CompositeLit:
				rows = max(rows, len(x.Elts))
			case *ast.Ident:
				rows = max(rows, literals[x.Name])
			}
		}
		return true
	})
	return rows
}

func (r *rendered) addDocs(name string, groups []string, note, text string) {
	for _, part := range docSeparator.Split(text, -1) {
		m := kindLine.FindStringSubmatch(part)
		if m == nil || !keptKinds[m[1]] {
			continue
		}
		var lines []string
		for _, line := range strings.Split(part, "\n") {
			lines = append(lines, strings.TrimRight(line, " \t"))
		}
		body := strings.Trim(strings.Join(lines, "\n"), "\n")
		r.docs = append(r.docs, document{name, groups, note, body})
	}
}

// chooseData picks, for one template, the data literal that defines the most of the fields
// it uses (a test file may fill different templates from different structs).
func chooseData(datas []*dataValue, text string) *dataValue {
	var refs []string
	for _, m := range fieldRef.FindAllStringSubmatch(text, -1) {
		refs = append(refs, m[1])
	}
	var best *dataValue
	bestScore := -1
	for _, d := range datas {
		score := 0
		for _, f := range refs {
			if _, ok := d.values[f]; ok {
				score++
			}
		}
		if score > bestScore {
			best, bestScore = d, score
		}
	}
	return best
}
