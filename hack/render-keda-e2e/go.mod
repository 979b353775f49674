// Standard library only: it reads KEDA's tests as source (go/parser) and renders their
// templates with the text/template they are written for; it never builds them.
module metrics-adapter/hack/render-keda-e2e

go 1.26
