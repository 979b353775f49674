package main

// What a test file renders: its template constants, and the template data its functions
// build (the literal in getTemplateData, or the first one in the file, per struct type).

import (
	"fmt"
	"go/ast"
	"go/token"
	"strings"
)

type templateConst struct {
	name string
	text string
}

// templates are the file's string constants and variables that hold a Kubernetes object.
func (e *evaluator) templates(path string) []templateConst {
	scratch := &evaluator{l: e.l, pkg: e.pkg, root: e.root, placeholders: map[string]string{}}
	var out []templateConst
	for _, decl := range e.pkg.files[path].Decls {
		gen, ok := decl.(*ast.GenDecl)
		if !ok || (gen.Tok != token.CONST && gen.Tok != token.VAR) {
			continue
		}
		for _, spec := range gen.Specs {
			vs := spec.(*ast.ValueSpec)
			if len(vs.Values) != len(vs.Names) {
				continue
			}
			for i, n := range vs.Names {
				if !stringy(vs.Values[i]) {
					continue
				}
				text, ok := scratch.eval(vs.Values[i], nil).(string)
				if ok && anyKind.MatchString(text) {
					out = append(out, templateConst{n.Name, text})
				}
			}
		}
	}
	// Templates of KEDA's test helper packages the file applies (RabbitMQ's target
	// Deployment, say), in the order the file first names them.
	seen := map[string]bool{}
	add := func(name string, dep *pkg) {
		b, ok := dep.names[name]
		if !ok || seen[name] || b.expr == nil || !stringy(b.expr) {
			return
		}
		seen[name] = true
		if text, ok := scratch.eval(b.expr, pkgScope(dep)).(string); ok && anyKind.MatchString(text) {
			out = append(out, templateConst{name, text})
		}
	}
	ast.Inspect(e.pkg.files[path], func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.SelectorExpr:
			if id, ok := n.X.(*ast.Ident); ok {
				if dep, ok := e.pkg.imports[id.Name]; ok {
					add(n.Sel.Name, dep)
					// The templates a helper's template list names.
					if fn := dep.funcs[n.Sel.Name]; fn != nil && fn.Body != nil {
						ast.Inspect(fn.Body, func(m ast.Node) bool {
							if kv, ok := m.(*ast.KeyValueExpr); ok {
								if key, ok := kv.Key.(*ast.Ident); ok && key.Name == "Config" {
									if v, ok := kv.Value.(*ast.Ident); ok {
										add(v.Name, dep)
									}
								}
							}
							return true
						})
					}
				}
			}
		case *ast.Ident:
			if _, own := e.pkg.names[n.Name]; !own {
				for _, dep := range e.pkg.dots {
					add(n.Name, dep)
				}
			}
		}
		return true
	})
	return out
}

// stringy: a literal or a concatenation, the only shapes a template constant takes.
func stringy(x ast.Expr) bool {
	switch x := x.(type) {
	case *ast.BasicLit:
		return x.Kind == token.STRING
	case *ast.BinaryExpr:
		return x.Op == token.ADD && (stringy(x.X) || stringy(x.Y))
	case *ast.ParenExpr:
		return stringy(x.X)
	}
	return false
}

type dataValue struct {
	typ    string
	from   string
	values map[string]any
}

// literal is a template data literal and how to evaluate it: in its function (nil: at
// package level) of its package, whose parameters are the arguments of call when it is a
// helper package's function the file calls.
type literal struct {
	fn   *ast.FuncDecl
	lit  *ast.CompositeLit
	typ  string
	st   *ast.StructType
	pref bool
	pkg  *pkg
	call *site
}

// structOf is the struct type a literal's type names: the package's own, or an imported
// KEDA test package's (nats.JetStreamTemplateData).
func (e *evaluator) structOf(t ast.Expr, p *pkg) (string, *ast.StructType) {
	switch t := t.(type) {
	case *ast.Ident:
		return t.Name, p.structs[t.Name]
	case *ast.SelectorExpr:
		if id, ok := t.X.(*ast.Ident); ok {
			if dep, ok := p.imports[id.Name]; ok {
				return t.Sel.Name, dep.structs[t.Sel.Name]
			}
		}
	}
	return "", nil
}

// dataCandidates evaluates, per struct type the file fills templates with, one literal:
// the one in a getTemplate* function (or a helper package's function the file calls, or a
// package variable) if there is one, else the file's first.
func (e *evaluator) dataCandidates(path string) []*dataValue {
	var lits []literal
	for _, decl := range e.pkg.files[path].Decls {
		if gen, ok := decl.(*ast.GenDecl); ok && gen.Tok == token.VAR {
			// `var data = templateData{...}`: the file's data, whatever function returns it.
			for _, spec := range gen.Specs {
				for _, v := range spec.(*ast.ValueSpec).Values {
					if cl, ok := v.(*ast.CompositeLit); ok {
						if typ, st := e.structOf(cl.Type, e.pkg); st != nil {
							lits = append(lits, literal{lit: cl, typ: typ, st: st, pref: true, pkg: e.pkg})
						}
					}
				}
			}
		}
		fn, ok := decl.(*ast.FuncDecl)
		if !ok || fn.Body == nil {
			continue
		}
		pref := strings.HasPrefix(strings.ToLower(fn.Name.Name), "gettemplate")
		ast.Inspect(fn.Body, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.CompositeLit:
				if typ, st := e.structOf(n.Type, e.pkg); st != nil {
					lits = append(lits, literal{fn: fn, lit: n, typ: typ, st: st, pref: pref, pkg: e.pkg})
				}
			case *ast.CallExpr:
				if l, ok := e.helperData(fn, n); ok {
					lits = append(lits, l)
				}
			}
			return true
		})
	}
	chosen := map[string]literal{}
	var order []string
	for _, l := range lits {
		c, seen := chosen[l.typ]
		if !seen {
			order = append(order, l.typ)
		}
		if !seen || (l.pref && !c.pref) {
			chosen[l.typ] = l
		}
	}
	var out []*dataValue
	for _, pass := range []bool{true, false} {
		for _, typ := range order {
			if l := chosen[typ]; l.pref == pass {
				out = append(out, e.dataOf(l))
			}
		}
	}
	return out
}

// helperData: a call of a KEDA test helper (nats.GetJetStreamDeploymentTemplateData) whose
// function returns a struct literal, evaluated with the call's arguments.
func (e *evaluator) helperData(caller *ast.FuncDecl, c *ast.CallExpr) (literal, bool) {
	sel, ok := c.Fun.(*ast.SelectorExpr)
	if !ok {
		return literal{}, false
	}
	id, ok := sel.X.(*ast.Ident)
	if !ok {
		return literal{}, false
	}
	dep, ok := e.pkg.imports[id.Name]
	if !ok {
		return literal{}, false
	}
	fn := dep.funcs[sel.Sel.Name]
	if fn == nil || fn.Body == nil {
		return literal{}, false
	}
	for _, stmt := range fn.Body.List {
		ret, ok := stmt.(*ast.ReturnStmt)
		if !ok || len(ret.Results) == 0 {
			continue
		}
		if cl, ok := ret.Results[0].(*ast.CompositeLit); ok {
			if typ, st := e.structOf(cl.Type, dep); st != nil {
				call := &site{c, e.localScope(caller, c.Pos())}
				return literal{fn: fn, lit: cl, typ: typ, st: st, pref: true, pkg: dep, call: call}, true
			}
		}
	}
	return literal{}, false
}

func (e *evaluator) dataOf(l literal) *dataValue {
	values := map[string]any{}
	types := map[string]string{}
	var order []string
	for _, f := range l.st.Fields.List {
		t := e.source(f.Type)
		for _, n := range f.Names {
			values[n.Name] = zero(t)
			types[n.Name] = t
			order = append(order, n.Name)
		}
	}
	local, where := pkgScope(l.pkg), "package variable"
	if l.fn != nil {
		local, where = e.scopeIn(l.fn, l.lit.Pos(), l.pkg, l.call), l.fn.Name.Name+"()"
	}
	for i, el := range l.lit.Elts {
		var field string
		var x ast.Expr
		if kv, ok := el.(*ast.KeyValueExpr); ok {
			field, x = kv.Key.(*ast.Ident).Name, kv.Value
		} else if i < len(order) {
			field, x = order[i], el
		} else {
			continue
		}
		values[field] = convert(e.eval(x, local), types[field])
	}
	return &dataValue{l.typ, fmt.Sprintf("%s literal in %s", l.typ, where), values}
}

// localScope binds a function's parameters (to the arguments of its first call, else
// known only at run time) and the simple assignments on the way to pos: in the blocks,
// loops (the first element of a literal ranged over) and closures (t.Run) around it.
func (e *evaluator) localScope(fn *ast.FuncDecl, pos token.Pos) *scope {
	return e.scopeIn(fn, pos, e.pkg, nil)
}

// scopeIn is localScope for a function of p, called at args (nil: its first call in p).
func (e *evaluator) scopeIn(fn *ast.FuncDecl, pos token.Pos, p *pkg, args *site) *scope {
	parent := e.root
	if p != e.pkg {
		parent = pkgScope(p)
	}
	s := &scope{names: map[string]*binding{}, parent: parent, pkg: p}
	if args == nil && p == e.pkg {
		args = e.callSite(fn)
	}
	i := 0
	for _, f := range fn.Type.Params.List {
		for _, n := range f.Names {
			b := &binding{note: fmt.Sprintf("parameter %s of %s()", n.Name, fn.Name.Name), typ: e.source(f.Type)}
			if args != nil && i < len(args.call.Args) {
				b.expr, b.scope = args.call.Args[i], args.scope
			}
			s.names[n.Name] = b
			i++
		}
	}
	e.bindStmts(fn.Body.List, pos, s)
	return s
}

func (e *evaluator) bindStmts(list []ast.Stmt, pos token.Pos, s *scope) {
	for _, stmt := range list {
		if stmt.Pos() >= pos {
			return
		}
		around := stmt.End() > pos
		switch st := stmt.(type) {
		case *ast.AssignStmt:
			e.bindAssign(st, s)
			if around {
				e.bindClosures(st, pos, s)
			}
		case *ast.DeclStmt:
			e.bindDecl(st, s)
		case *ast.ExprStmt:
			if around {
				e.bindClosures(st, pos, s)
			}
		case *ast.RangeStmt:
			if around {
				if id, ok := st.Key.(*ast.Ident); ok && id.Name != "_" {
					s.names[id.Name] = &binding{value: int64(0), done: true}
				}
				if id, ok := st.Value.(*ast.Ident); ok && id.Name != "_" {
					row := &ast.IndexExpr{X: st.X, Index: &ast.Ident{Name: loopRow}}
					s.names[id.Name] = &binding{expr: row, scope: s}
				}
				e.bindStmts(st.Body.List, pos, s)
			}
		case *ast.ForStmt:
			if around {
				if init, ok := st.Init.(*ast.AssignStmt); ok {
					e.bindAssign(init, s) // the first iteration
				}
				e.bindStmts(st.Body.List, pos, s)
			}
		case *ast.BlockStmt:
			if around {
				e.bindStmts(st.List, pos, s)
			}
		case *ast.IfStmt:
			if around {
				e.bindStmts(st.Body.List, pos, s)
				if blk, ok := st.Else.(*ast.BlockStmt); ok {
					e.bindStmts(blk.List, pos, s)
				}
			} else if st.Init == nil {
				// `if nbReplicas > 1 { aggregate = true }`: the branch taken, when known.
				if cond, ok := e.eval(st.Cond, s).(bool); ok {
					if cond {
						e.bindStmts(st.Body.List, pos, s)
					} else if blk, ok := st.Else.(*ast.BlockStmt); ok {
						e.bindStmts(blk.List, pos, s)
					}
				}
			}
		}
	}
}

// bindClosures descends into the function literal around pos (t.Run's test body).
func (e *evaluator) bindClosures(n ast.Node, pos token.Pos, s *scope) {
	ast.Inspect(n, func(node ast.Node) bool {
		if fl, ok := node.(*ast.FuncLit); ok && fl.Pos() <= pos && pos < fl.End() {
			e.bindStmts(fl.Body.List, pos, s)
			return false
		}
		return true
	})
}

func (e *evaluator) bindAssign(st *ast.AssignStmt, s *scope) {
	for i, lhs := range st.Lhs {
		id, ok := lhs.(*ast.Ident)
		if !ok || id.Name == "_" {
			continue
		}
		if len(st.Lhs) == len(st.Rhs) {
			s.names[id.Name] = &binding{expr: st.Rhs[i], scope: s}
		} else {
			s.names[id.Name] = &binding{note: fmt.Sprintf("%s from %s", id.Name, e.source(st.Rhs[0]))}
		}
	}
}

func (e *evaluator) bindDecl(st *ast.DeclStmt, s *scope) {
	gen, ok := st.Decl.(*ast.GenDecl)
	if !ok {
		return
	}
	for _, spec := range gen.Specs {
		vs, ok := spec.(*ast.ValueSpec)
		if !ok {
			continue
		}
		for i, n := range vs.Names {
			if len(vs.Values) == len(vs.Names) {
				s.names[n.Name] = &binding{expr: vs.Values[i], scope: s}
			} else if vs.Type != nil {
				// Declared, then set under conditions: the zero value.
				s.names[n.Name] = &binding{value: zero(e.source(vs.Type)), done: true}
			}
		}
	}
}

type site struct {
	call  *ast.CallExpr
	scope *scope
}

// callSite is the first call of fn in its file, whose arguments are what its parameters
// are when the test runs (when they can be evaluated at all).
func (e *evaluator) callSite(fn *ast.FuncDecl) *site {
	for _, f := range e.pkg.files {
		for _, decl := range f.Decls {
			caller, ok := decl.(*ast.FuncDecl)
			if !ok || caller.Body == nil || caller == fn {
				continue
			}
			var found *ast.CallExpr
			ast.Inspect(caller.Body, func(n ast.Node) bool {
				if c, ok := n.(*ast.CallExpr); ok && found == nil {
					if id, ok := c.Fun.(*ast.Ident); ok && id.Name == fn.Name.Name {
						found = c
					}
				}
				return found == nil
			})
			if found != nil {
				return &site{found, e.localScope(caller, found.Pos())}
			}
		}
	}
	return nil
}

func zero(t string) any {
	switch t {
	case "string":
		return ""
	case "int", "int32", "int64", "uint", "uint32", "uint64":
		return 0
	case "float32", "float64":
		return 0.0
	case "bool":
		return false
	}
	return nil
}

// convert gives a value its field's type, so that text/template prints and compares it as
// the test's struct would.
func convert(v any, t string) any {
	switch t {
	case "int", "int32", "int64", "uint", "uint32", "uint64":
		if n, ok := v.(int64); ok {
			return int(n)
		}
	case "string":
		if b, ok := v.([]byte); ok {
			return string(b)
		}
	}
	return v
}
