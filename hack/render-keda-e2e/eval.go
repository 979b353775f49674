package main

// A small evaluator for the Go expressions KEDA's e2e tests build their template data
// from: string and number literals, constants and variables (of the file, its package and
// the KEDA test packages it imports), +, -, *, /, fmt.Sprintf and friends, base64, strconv
// and strings helpers, and conversions. Anything else is only known when the test runs and
// becomes a named placeholder.

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"go/ast"
	"go/parser"
	"go/printer"
	"go/token"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

type pkg struct {
	fset    *token.FileSet
	files   map[string]*ast.File // by path
	names   map[string]*binding  // package-level constants and variables
	structs map[string]*ast.StructType
	funcs   map[string]*ast.FuncDecl
	imports map[string]*pkg // by local name; "." for dot imports, merged into lookups
	dots    []*pkg
	aliases map[string]string // a renamed standard import (b64) -> its name (base64)
}

type loader struct {
	root string
	fset *token.FileSet
	pkgs map[string]*pkg // by directory and package name
}

func newLoader(root string) *loader {
	return &loader{root: root, fset: token.NewFileSet(), pkgs: map[string]*pkg{}}
}

// pkgOf is the package of a test file: every .go file of its directory with its package name.
func (l *loader) pkgOf(path string) (*pkg, error) {
	f, err := parser.ParseFile(l.fset, path, nil, parser.PackageClauseOnly)
	if err != nil {
		return nil, err
	}
	return l.load(filepath.Dir(path), f.Name.Name, true)
}

func (l *loader) load(dir, name string, withTests bool) (*pkg, error) {
	key := fmt.Sprintf("%s|%s|%v", dir, name, withTests)
	if p, ok := l.pkgs[key]; ok {
		return p, nil
	}
	p := &pkg{fset: l.fset, files: map[string]*ast.File{}, names: map[string]*binding{},
		structs: map[string]*ast.StructType{}, funcs: map[string]*ast.FuncDecl{}, imports: map[string]*pkg{}, aliases: map[string]string{}}
	l.pkgs[key] = p
	paths, _ := filepath.Glob(filepath.Join(dir, "*.go"))
	sort.Strings(paths)
	for _, path := range paths {
		if !withTests && strings.HasSuffix(path, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(l.fset, path, nil, 0)
		if err != nil {
			return nil, err
		}
		if name != "" && f.Name.Name != name {
			continue
		}
		p.files[path] = f
		p.collect(f)
		for _, imp := range f.Imports {
			ipath, _ := strconv.Unquote(imp.Path.Value)
			if !strings.HasPrefix(ipath, kedaModule+"/tests/") {
				if imp.Name != nil {
					p.aliases[imp.Name.Name] = filepath.Base(ipath)
				}
				continue
			}
			dep, err := l.load(filepath.Join(l.root, strings.TrimPrefix(ipath, kedaModule+"/")), "", false)
			if err != nil {
				return nil, err
			}
			local := filepath.Base(ipath)
			if imp.Name != nil {
				local = imp.Name.Name
			}
			if local == "." {
				p.dots = append(p.dots, dep)
			} else {
				p.imports[local] = dep
			}
		}
	}
	p.runtimeAssigned()
	return p, nil
}

// runtimeAssigned gives a package variable declared without a value, or with its type's zero
// value, the first value a function assigns it (`tableName = fmt.Sprintf("table-%d", ...)` in
// the test before it applies its templates): the test renders with that, never with "".
func (p *pkg) runtimeAssigned() {
	paths := make([]string, 0, len(p.files))
	for path := range p.files {
		paths = append(paths, path)
	}
	sort.Strings(paths)
	for _, path := range paths {
		for _, decl := range p.files[path].Decls {
			fn, ok := decl.(*ast.FuncDecl)
			if !ok || fn.Body == nil {
				continue
			}
			ast.Inspect(fn.Body, func(n ast.Node) bool {
				as, ok := n.(*ast.AssignStmt)
				if !ok || as.Tok != token.ASSIGN || len(as.Lhs) != len(as.Rhs) {
					return true
				}
				for i, lhs := range as.Lhs {
					id, ok := lhs.(*ast.Ident)
					if !ok {
						continue
					}
					if b := p.names[id.Name]; b != nil && !b.done && isZeroExpr(b.expr) {
						p.names[id.Name] = &binding{expr: as.Rhs[i]}
					}
				}
				return true
			})
		}
	}
}

// isZeroExpr: no value, `""` or `0`, what a variable holds until a test function sets it.
func isZeroExpr(x ast.Expr) bool {
	if x == nil {
		return true
	}
	lit, ok := x.(*ast.BasicLit)
	return ok && (lit.Value == `""` || lit.Value == "0")
}

// binding is a name's defining expression and the scope it is evaluated in; a nil expr is
// a value only known at run time (a function parameter), described by note.
type binding struct {
	expr  ast.Expr
	scope *scope
	note  string
	typ   string // of a parameter
	value any
	done  bool
	busy  bool
}

func (p *pkg) collect(f *ast.File) {
	for _, decl := range f.Decls {
		if fn, ok := decl.(*ast.FuncDecl); ok && fn.Recv == nil {
			p.funcs[fn.Name.Name] = fn
		}
		gen, ok := decl.(*ast.GenDecl)
		if !ok {
			continue
		}
		for _, spec := range gen.Specs {
			switch s := spec.(type) {
			case *ast.ValueSpec:
				for i, n := range s.Names {
					b := &binding{note: "declared without a value: " + n.Name}
					if len(s.Values) == len(s.Names) {
						b = &binding{expr: s.Values[i]}
					}
					p.names[n.Name] = b
				}
			case *ast.TypeSpec:
				if st, ok := s.Type.(*ast.StructType); ok {
					p.structs[s.Name.Name] = st
				}
			}
		}
	}
}

type scope struct {
	names  map[string]*binding
	parent *scope
	pkg    *pkg
}

func (s *scope) lookup(name string) *binding {
	for c := s; c != nil; c = c.parent {
		if b, ok := c.names[name]; ok {
			return b
		}
	}
	return nil
}

func pkgScope(p *pkg) *scope {
	// Dot imports answer what the package itself does not declare.
	own := &scope{names: p.names, pkg: p}
	cur := own
	for _, dot := range p.dots {
		cur.parent = &scope{names: dot.names, pkg: dot}
		cur = cur.parent
	}
	return own
}

// loopRow stands, in the index of a loop variable's binding, for the row being evaluated.
const loopRow = "·row"

type evaluator struct {
	row          int // of the loops over literal tables, as renderFile evaluates it
	l            *loader
	pkg          *pkg
	root         *scope
	placeholders map[string]string // placeholder value -> what it stands for
}

func newEvaluator(l *loader, p *pkg) *evaluator {
	return &evaluator{l: l, pkg: p, root: pkgScope(p), placeholders: map[string]string{}}
}

func (e *evaluator) source(n ast.Node) string {
	var b bytes.Buffer
	_ = printer.Fprint(&b, e.l.fset, n)
	return strings.Join(strings.Fields(b.String()), " ")
}

var slugChars = regexp.MustCompile(`[^a-z0-9]+`)

// placeholder stands for a value the test only knows when it runs: a lower-case DNS label,
// valid wherever the test puts it (names, namespaces, metadata values).
func (e *evaluator) placeholder(what string) string {
	slug := strings.Trim(slugChars.ReplaceAllString(strings.ToLower(what), "-"), "-")
	slug = strings.TrimPrefix(slug, "os-getenv-")
	if len(slug) > 40 {
		slug = strings.Trim(slug[:40], "-")
	}
	value := "placeholder-" + slug
	if v, ok := plausible[what]; ok {
		value = v
	}
	e.placeholders[value] = what
	return value
}

// runtime stands for a typed value only known when the test runs (a time, a random
// number): a fixed plausible one, named in the output as placeholders are.
func (e *evaluator) runtime(value any, what string) any {
	e.placeholders[fmt.Sprint(value)] = what
	return value
}

// plausible values for runtime values a parser checks the shape of; the rest are
// placeholder strings.
var plausible = map[string]string{
	`os.Getenv("TF_AWS_REGION")`:               "us-east-1",
	`os.Getenv("TF_AWS_ACCOUNT_ID")`:           "000000000000",
	`os.Getenv("TF_AWS_WORKLOAD1_ROLE")`:       "arn:aws:iam::000000000000:role/placeholder-workload1-role",
	`os.Getenv("TF_AWS_WORKLOAD2_ROLE")`:       "arn:aws:iam::000000000000:role/placeholder-workload2-role",
	`os.Getenv("TF_AWS_ROLE_ARN_EXTERNAL_ID")`: "arn:aws:iam::000000000000:role/placeholder-external-id-role",
	`*queue.QueueUrl`:                          "https://sqs.us-east-1.amazonaws.com/000000000000/placeholder-queue",
	`*queueWorkload1.QueueUrl`:                 "https://sqs.us-east-1.amazonaws.com/000000000000/placeholder-queue",
}

// fixedNow is time.Now() for the tests that compute a cron window from it.
var fixedNow = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

func (e *evaluator) placeholderList() []string {
	var out []string
	for v, what := range e.placeholders {
		out = append(out, fmt.Sprintf("%s = %s", v, what))
	}
	sort.Strings(out)
	return out
}

func (e *evaluator) resolve(b *binding) any {
	if b.done {
		return b.value
	}
	if b.busy || b.expr == nil {
		if strings.HasPrefix(b.typ, "int") {
			return e.runtime(int64(1), b.note)
		}
		if b.typ == "bool" {
			return e.runtime(false, b.note)
		}
		return e.placeholder(b.note)
	}
	b.busy = true
	b.value = e.eval(b.expr, b.scope)
	if v, ok := b.value.(string); ok && b.typ != "" && b.typ != "string" && strings.HasPrefix(v, "placeholder-") {
		// A parameter whose argument is unknown too (a loop variable): typed as declared.
		delete(e.placeholders, v)
		b.expr = nil
		b.busy = false
		b.value = e.resolve(b)
	}
	b.busy, b.done = false, true
	return b.value
}

func (e *evaluator) eval(x ast.Expr, s *scope) any {
	if s == nil {
		s = e.root
	}
	switch x := x.(type) {
	case *ast.BasicLit:
		switch x.Kind {
		case token.STRING:
			v, _ := strconv.Unquote(x.Value)
			return v
		case token.INT:
			v, _ := strconv.ParseInt(x.Value, 0, 64)
			return v
		case token.FLOAT:
			v, _ := strconv.ParseFloat(x.Value, 64)
			return v
		case token.CHAR:
			v, _, _, _ := strconv.UnquoteChar(x.Value[1:len(x.Value)-1], '\'')
			return int64(v)
		}
	case *ast.ParenExpr:
		return e.eval(x.X, s)
	case *ast.Ident:
		switch x.Name {
		case "true":
			return true
		case "false":
			return false
		case "nil":
			return nil
		}
		if b := s.lookup(x.Name); b != nil {
			if b.scope == nil {
				b.scope = e.scopeOf(x.Name, s)
			}
			return e.resolve(b)
		}
	case *ast.SelectorExpr:
		if id, ok := x.X.(*ast.Ident); ok {
			if dep, ok := e.pkg.imports[id.Name]; ok {
				if b, ok := dep.names[x.Sel.Name]; ok {
					if b.scope == nil {
						b.scope = pkgScope(dep)
					}
					return e.resolve(b)
				}
			}
		}
		if fields, ok := e.eval(x.X, s).(map[string]any); ok {
			if v, ok := fields[x.Sel.Name]; ok {
				return v
			}
		}
	case *ast.BinaryExpr:
		return e.binary(x, s)
	case *ast.UnaryExpr:
		if v, ok := e.eval(x.X, s).(int64); ok && x.Op == token.SUB {
			return -v
		}
	case *ast.CallExpr:
		if v, ok := e.call(x, s); ok {
			return v
		}
	case *ast.CompositeLit:
		if _, ok := x.Type.(*ast.ArrayType); ok {
			var out []any
			for _, el := range x.Elts {
				out = append(out, e.eval(el, s))
			}
			return out
		}
		// A struct: its keyed fields (a test table's row, say).
		fields := map[string]any{}
		for _, el := range x.Elts {
			kv, ok := el.(*ast.KeyValueExpr)
			if !ok {
				break
			}
			if key, ok := kv.Key.(*ast.Ident); ok {
				fields[key.Name] = e.eval(kv.Value, s)
			}
		}
		if len(fields) == len(x.Elts) {
			return fields
		}
	case *ast.IndexExpr:
		if list, ok := e.eval(x.X, s).([]any); ok && len(list) > 0 {
			if id, ok := x.Index.(*ast.Ident); ok && id.Name == loopRow {
				return list[min(e.row, len(list)-1)]
			}
			if i, ok := e.eval(x.Index, s).(int64); ok && int(i) < len(list) {
				return list[i]
			}
		}
	}
	return e.placeholder(e.source(x))
}

// scopeOf is where a package-level name found through s is evaluated: its own package.
func (e *evaluator) scopeOf(name string, s *scope) *scope {
	for c := s; c != nil; c = c.parent {
		if _, ok := c.names[name]; ok {
			if c.pkg != nil && c.pkg != e.pkg {
				return pkgScope(c.pkg)
			}
			return e.root
		}
	}
	return e.root
}

func (e *evaluator) binary(x *ast.BinaryExpr, s *scope) any {
	a, b := e.eval(x.X, s), e.eval(x.Y, s)
	switch x.Op {
	case token.EQL, token.NEQ, token.GTR, token.LSS, token.GEQ, token.LEQ, token.LAND, token.LOR:
		// A condition: a bool when both sides are known, else nil (no branch is taken).
		if !isKnown(a) || !isKnown(b) {
			return nil
		}
	}
	switch x.Op {
	case token.EQL:
		return a == b
	case token.NEQ:
		return a != b
	case token.LAND, token.LOR:
		av, aok := a.(bool)
		bv, bok := b.(bool)
		if aok && bok {
			return (x.Op == token.LAND && av && bv) || (x.Op == token.LOR && (av || bv))
		}
		return nil
	}
	switch av := a.(type) {
	case string:
		if bv, ok := b.(string); ok && x.Op == token.ADD {
			return av + bv
		}
	case int64:
		if bv, ok := b.(int64); ok {
			switch x.Op {
			case token.ADD:
				return av + bv
			case token.SUB:
				return av - bv
			case token.MUL:
				return av * bv
			case token.QUO:
				if bv != 0 {
					return av / bv
				}
			case token.REM:
				if bv != 0 {
					return av % bv
				}
			case token.GTR:
				return av > bv
			case token.LSS:
				return av < bv
			case token.GEQ:
				return av >= bv
			case token.LEQ:
				return av <= bv
			}
		}
	}
	return e.placeholder(e.source(x))
}

// isKnown: a comparable value that is not a placeholder.
func isKnown(v any) bool {
	switch v := v.(type) {
	case string:
		return !strings.HasPrefix(v, "placeholder-")
	case int64, bool, float64:
		return true
	}
	return false
}

func (e *evaluator) args(c *ast.CallExpr, s *scope) []any {
	var out []any
	for _, a := range c.Args {
		out = append(out, e.eval(a, s))
	}
	return out
}

func str(v any) string {
	switch v := v.(type) {
	case []byte:
		return string(v)
	case string:
		return v
	}
	return fmt.Sprint(v)
}

func (e *evaluator) call(c *ast.CallExpr, s *scope) (any, bool) {
	name := e.source(c.Fun)
	if first, rest, ok := strings.Cut(name, "."); ok {
		if std, ok := e.pkg.aliases[first]; ok {
			name = std + "." + rest
		} else if _, ok := e.pkg.imports[first]; ok {
			name = rest // helper.GetRandomNumber, as the dot import's GetRandomNumber
		}
	}
	switch name {
	case "fmt.Sprintf":
		a := e.args(c, s)
		if f, ok := a[0].(string); ok {
			return fmt.Sprintf(f, a[1:]...), true
		}
	case "len":
		switch v := e.eval(c.Args[0], s).(type) {
		case string:
			if isKnown(v) {
				return int64(len(v)), true
			}
		case []any:
			return int64(len(v)), true
		}
	case "fmt.Sprint":
		return fmt.Sprint(e.args(c, s)...), true
	case "base64.StdEncoding.EncodeToString":
		return base64.StdEncoding.EncodeToString([]byte(str(e.eval(c.Args[0], s)))), true
	case "[]byte":
		return []byte(str(e.eval(c.Args[0], s))), true
	case "string":
		if v, ok := e.eval(c.Args[0], s).([]byte); ok {
			return string(v), true
		}
		if v, ok := e.eval(c.Args[0], s).(string); ok {
			return v, true
		}
	case "strconv.Itoa", "strconv.FormatInt":
		if v, ok := e.eval(c.Args[0], s).(int64); ok {
			return strconv.FormatInt(v, 10), true
		}
	case "strconv.Quote":
		return strconv.Quote(str(e.eval(c.Args[0], s))), true
	case "strings.ToLower":
		return strings.ToLower(str(e.eval(c.Args[0], s))), true
	case "strings.ToUpper":
		return strings.ToUpper(str(e.eval(c.Args[0], s))), true
	case "strings.TrimSpace":
		return strings.TrimSpace(str(e.eval(c.Args[0], s))), true
	case "strings.ReplaceAll":
		a := e.args(c, s)
		return strings.ReplaceAll(str(a[0]), str(a[1]), str(a[2])), true
	case "int", "int32", "int64", "uint", "uint32", "uint64":
		switch v := e.eval(c.Args[0], s).(type) {
		case int64:
			return v, true
		case float64:
			return int64(v), true
		}
	case "float64", "float32":
		switch v := e.eval(c.Args[0], s).(type) {
		case int64:
			return float64(v), true
		case float64:
			return v, true
		}
	case "time.Now":
		return e.runtime(fixedNow, "time.Now()"), true
	case "GetRandomNumber":
		return e.runtime(int64(4242), "GetRandomNumber()"), true
	case "os.Getenv":
		if v, ok := e.eval(c.Args[0], s).(string); ok {
			return e.placeholder("os.Getenv(" + strconv.Quote(v) + ")"), true
		}
	}
	if sel, ok := c.Fun.(*ast.SelectorExpr); ok {
		if id, ok := sel.X.(*ast.Ident); ok && s.lookup(id.Name) == nil {
			return nil, false // a package's function
		}
		if t, ok := e.eval(sel.X, s).(time.Time); ok {
			switch sel.Sel.Name {
			case "Local", "UTC":
				return t, true
			case "Minute":
				return int64(t.Minute()), true
			case "Hour":
				return int64(t.Hour()), true
			case "Unix":
				return t.Unix(), true
			case "UnixNano":
				return t.UnixNano(), true
			}
		}
	}
	return nil, false
}
