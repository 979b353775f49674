package main

// How a test applies its templates: in groups (a []Template{{Config: x}} list, created
// together by CreateKubernetesResources or KubectlApplyMultipleWithTemplate) and one by one
// (KubectlApplyWithTemplate), each time with the data as the calling function has set it so
// far (`data.ResetPolicy = "earliest"`). Each application is rendered (main.go keeps each
// distinct output once); a function's settings start afresh in the next function, as data
// is passed by value.

import (
	"fmt"
	"go/ast"
	"go/token"
	"slices"
	"sort"
	"strings"
)

// oneByOne: the helpers that render one template (data, then the template, at these args).
var oneByOne = map[string][2]int{
	"KubectlApplyWithTemplate": {1, 3}, "KubectlReplaceWithTemplate": {1, 3}, "KubectlApplyWithErrors": {1, 3},
}

// together: the helpers that render a group of templates (data, then the group).
var together = map[string][2]int{
	"CreateKubernetesResources": {3, 4}, "KubectlApplyMultipleWithTemplate": {1, 2},
}

type group struct {
	id      string
	members []string
}

// application is one rendering of a template: with the data as set where it is applied
// (nil: the file's data as built), created with the others of its context (a template
// list, or the function applying templates one by one).
type application struct {
	data    *dataValue
	context string
	pos     token.Pos
}

// applications lists, per template, each time the test applies it, in the order of the
// file; a template no call applies is rendered once, with the file's data.
func (e *evaluator) applications(path string, datas []*dataValue) map[string][]application {
	out := map[string][]application{}
	byLit, byFunc := e.groupsOf(path)
	called := map[*group]bool{}
	for _, decl := range e.pkg.files[path].Decls {
		fn, ok := decl.(*ast.FuncDecl)
		if !ok || fn.Body == nil {
			continue
		}
		var set []*ast.AssignStmt
		ast.Inspect(fn.Body, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.AssignStmt:
				if sel, ok := n.Lhs[0].(*ast.SelectorExpr); ok && len(n.Lhs) == len(n.Rhs) {
					if _, ok := sel.X.(*ast.Ident); ok {
						set = append(set, n)
					}
				}
			case *ast.CallExpr:
				id, ok := n.Fun.(*ast.Ident)
				if !ok {
					return true
				}
				var names []string
				context := fn.Name.Name + "()"
				dataArg := -1
				if at, ok := oneByOne[id.Name]; ok && len(n.Args) > at[1] {
					switch t := n.Args[at[1]].(type) {
					case *ast.Ident:
						names = []string{t.Name}
					case *ast.SelectorExpr:
						names = []string{t.Sel.Name}
					}
					dataArg = at[0]
				} else if at, ok := together[id.Name]; ok && len(n.Args) > at[1] {
					if g := e.groupAt(fn, n.Args[at[1]], n.Pos(), byLit, byFunc); g != nil {
						names, context = g.members, g.id
						called[g] = true
					}
					dataArg = at[0]
				}
				var data *dataValue
				if len(names) > 0 && len(datas) > 0 {
					base := e.dataFor(fn, n.Args[dataArg], n.Pos(), datas)
					data = base
					if len(set) > 0 {
						data = e.withSettings(fn, base, set, n.Pos())
					}
				}
				for _, name := range names {
					out[name] = append(out[name], application{data, context, n.Pos()})
				}
			}
			return true
		})
	}
	for lit, g := range byLit {
		if !called[g] {
			for _, m := range g.members {
				out[m] = append(out[m], application{nil, g.id, lit.Pos()})
			}
		}
	}
	for _, apps := range out {
		sort.SliceStable(apps, func(i, j int) bool { return apps[i].pos < apps[j].pos })
	}
	return out
}

// groupsOf finds every []Template literal of the file, and which function returns which.
func (e *evaluator) groupsOf(path string) (map[*ast.CompositeLit]*group, map[string]*group) {
	byLit := map[*ast.CompositeLit]*group{}
	byFunc := map[string]*group{}
	for _, decl := range e.pkg.files[path].Decls {
		fn, ok := decl.(*ast.FuncDecl)
		if !ok || fn.Body == nil {
			continue
		}
		n := 0
		ast.Inspect(fn.Body, func(node ast.Node) bool {
			if ret, ok := node.(*ast.ReturnStmt); ok {
				for _, r := range ret.Results {
					if cl, ok := r.(*ast.CompositeLit); ok && isTemplateList(cl) {
						byFunc[fn.Name.Name] = e.newGroup(fn, cl, &n, byLit)
					}
				}
			}
			if cl, ok := node.(*ast.CompositeLit); ok && isTemplateList(cl) {
				e.newGroup(fn, cl, &n, byLit)
			}
			return true
		})
	}
	return byLit, byFunc
}

func (e *evaluator) newGroup(fn *ast.FuncDecl, cl *ast.CompositeLit, n *int, byLit map[*ast.CompositeLit]*group) *group {
	if g, ok := byLit[cl]; ok {
		return g
	}
	*n++
	g := &group{id: fn.Name.Name}
	if *n > 1 {
		g.id = fmt.Sprintf("%s#%d", fn.Name.Name, *n)
	}
	for _, el := range cl.Elts {
		inner, ok := el.(*ast.CompositeLit)
		if !ok {
			continue
		}
		for _, f := range inner.Elts {
			kv, ok := f.(*ast.KeyValueExpr)
			if key, isKey := kv.Key.(*ast.Ident); !ok || !isKey || key.Name != "Config" {
				continue
			}
			switch v := kv.Value.(type) {
			case *ast.Ident:
				g.members = append(g.members, v.Name)
			case *ast.SelectorExpr:
				g.members = append(g.members, v.Sel.Name)
			}
		}
	}
	byLit[cl] = g
	return g
}

// returnedGroup is the template list a helper package's function returns.
func (e *evaluator) returnedGroup(fn *ast.FuncDecl, byLit map[*ast.CompositeLit]*group) *group {
	var found *group
	n := 0
	ast.Inspect(fn.Body, func(node ast.Node) bool {
		if ret, ok := node.(*ast.ReturnStmt); ok && found == nil {
			for _, r := range ret.Results {
				if cl, ok := r.(*ast.CompositeLit); ok && isTemplateList(cl) {
					found = e.newGroup(fn, cl, &n, byLit)
				}
			}
		}
		return found == nil
	})
	return found
}

func isTemplateList(cl *ast.CompositeLit) bool {
	at, ok := cl.Type.(*ast.ArrayType)
	if !ok {
		return false
	}
	switch t := at.Elt.(type) {
	case *ast.Ident:
		return t.Name == "Template"
	case *ast.SelectorExpr:
		return t.Sel.Name == "Template"
	}
	return false
}

// groupAt is the group a call's templates argument holds: a literal, or a variable last
// assigned (before pos) a literal or the result of a function returning one.
func (e *evaluator) groupAt(fn *ast.FuncDecl, x ast.Expr, pos token.Pos, byLit map[*ast.CompositeLit]*group, byFunc map[string]*group) *group {
	switch x := x.(type) {
	case *ast.CompositeLit:
		return byLit[x]
	case *ast.Ident:
		var found *group
		ast.Inspect(fn.Body, func(n ast.Node) bool {
			a, ok := n.(*ast.AssignStmt)
			if !ok || a.Pos() >= pos {
				return true
			}
			for i, lhs := range a.Lhs {
				if id, ok := lhs.(*ast.Ident); !ok || id.Name != x.Name {
					continue
				}
				rhs := a.Rhs[0]
				if len(a.Rhs) == len(a.Lhs) {
					rhs = a.Rhs[i]
				}
				switch r := rhs.(type) {
				case *ast.CompositeLit:
					found = byLit[r]
				case *ast.CallExpr:
					if f, ok := r.Fun.(*ast.Ident); ok {
						found = byFunc[f.Name]
					} else if callee := e.callee(r); callee != nil {
						found = e.returnedGroup(callee, byLit)
					}
				}
			}
			return true
		})
		return found
	}
	return nil
}

// dataFor is the data a call passes: the file's literal of the type of its data argument
// (a variable assigned a literal or a function's result, or a parameter), else the first.
func (e *evaluator) dataFor(fn *ast.FuncDecl, arg ast.Expr, pos token.Pos, datas []*dataValue) *dataValue {
	if d := e.assignedData(fn, arg, pos); d != nil {
		return d
	}
	typ := e.typeOf(fn, arg, pos)
	for _, d := range datas {
		if d.typ == typ {
			return d
		}
	}
	return datas[0]
}

// assignedData: the data a variable of fn was last given before pos, when that is a
// literal (`data := nats.JetStreamTemplateData{...}`) or a helper's result.
func (e *evaluator) assignedData(fn *ast.FuncDecl, arg ast.Expr, pos token.Pos) *dataValue {
	id, ok := arg.(*ast.Ident)
	if !ok {
		return nil
	}
	var rhs ast.Expr
	ast.Inspect(fn.Body, func(n ast.Node) bool {
		if a, ok := n.(*ast.AssignStmt); ok && a.Pos() < pos {
			if l, ok := a.Lhs[0].(*ast.Ident); ok && l.Name == id.Name {
				rhs = a.Rhs[0]
			}
		}
		return true
	})
	switch r := rhs.(type) {
	case *ast.CompositeLit:
		if typ, st := e.structOf(r.Type, e.pkg); st != nil {
			return e.dataOf(literal{fn: fn, lit: r, typ: typ, st: st, pkg: e.pkg})
		}
	case *ast.CallExpr:
		if l, ok := e.helperData(fn, r); ok {
			return e.dataOf(l)
		}
	}
	return nil
}

func (e *evaluator) typeOf(fn *ast.FuncDecl, arg ast.Expr, pos token.Pos) string {
	id, ok := arg.(*ast.Ident)
	if !ok {
		return ""
	}
	name := func(t ast.Expr) string {
		switch t := t.(type) {
		case *ast.Ident:
			return t.Name
		case *ast.SelectorExpr:
			return t.Sel.Name
		}
		return ""
	}
	typ := ""
	for _, f := range fn.Type.Params.List {
		for _, n := range f.Names {
			if n.Name == id.Name {
				typ = name(f.Type)
			}
		}
	}
	ast.Inspect(fn.Body, func(n ast.Node) bool {
		a, ok := n.(*ast.AssignStmt)
		if !ok || a.Pos() >= pos {
			return true
		}
		for i, lhs := range a.Lhs {
			if l, ok := lhs.(*ast.Ident); !ok || l.Name != id.Name {
				continue
			}
			switch r := a.Rhs[0].(type) {
			case *ast.CompositeLit:
				typ = name(r.Type)
			case *ast.CallExpr:
				if callee := e.callee(r); callee != nil && callee.Type.Results != nil {
					if results := callee.Type.Results.List; i < len(results) {
						typ = name(results[i].Type)
					}
				}
			}
		}
		return true
	})
	return typ
}

// callee is the declaration of a function of the file's package or of an imported KEDA
// test package.
func (e *evaluator) callee(c *ast.CallExpr) *ast.FuncDecl {
	switch f := c.Fun.(type) {
	case *ast.Ident:
		return e.pkg.funcs[f.Name]
	case *ast.SelectorExpr:
		if id, ok := f.X.(*ast.Ident); ok {
			if dep, ok := e.pkg.imports[id.Name]; ok {
				return dep.funcs[f.Sel.Name]
			}
		}
	}
	return nil
}

func (e *evaluator) withSettings(fn *ast.FuncDecl, base *dataValue, set []*ast.AssignStmt, pos token.Pos) *dataValue {
	values := map[string]any{}
	for k, v := range base.values {
		values[k] = v
	}
	var fields []string
	for _, a := range set {
		local := e.localScope(fn, a.Pos())
		for i, lhs := range a.Lhs {
			sel := lhs.(*ast.SelectorExpr)
			// data.X = data.Y * 3: the data as set so far.
			local.names[sel.X.(*ast.Ident).Name] = &binding{value: values, done: true}
			old, ok := values[sel.Sel.Name]
			if !ok {
				continue
			}
			v := e.eval(a.Rhs[i], local)
			switch old.(type) {
			case int:
				v = convert(v, "int")
			case string:
				v = convert(v, "string")
			}
			values[sel.Sel.Name] = v
			fields = append(fields, sel.Sel.Name)
		}
	}
	sort.Strings(fields)
	fields = slices.Compact(fields)
	from := fmt.Sprintf("%s, with %s set as %s() sets them", base.from, strings.Join(fields, ", "), fn.Name.Name)
	return &dataValue{base.typ, from, values}
}
