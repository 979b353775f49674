package main

// The renderer over a miniature of KEDA's tests/ tree: a helper package imported with a
// dot, a test file whose data comes from getTemplateData(), fields set before a
// template is applied, a loop over a table, a condition, and a runtime value.

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const helperSource = `package helper

const Region = "eu"

type Template struct{ Name, Config string }

func GetRandomNumber() int { return 7 }
`

const testSource = `package x_test

import (
	"fmt"
	"os"

	. "github.com/kedacore/keda/v2/tests/helper"
)

const testName = "x-test"

var (
	testNamespace = fmt.Sprintf("%s-ns", testName)
	secretName    = testName + "-secret"
	region        = os.Getenv("TF_AWS_REGION")
	queue         = fmt.Sprintf("queue-%d", GetRandomNumber())
)

type templateData struct {
	TestNamespace string
	SecretName    string
	Region        string
	Queue         string
	Replicas      int
	Aggregate     bool
	Policy        string
}

const (
	secretTemplate = ~apiVersion: v1
kind: Secret
metadata:
  name: {{.SecretName}}
  namespace: {{.TestNamespace}}
~

	scaledObjectTemplate = ~apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata:
  name: so-{{.Replicas}}
  namespace: {{.TestNamespace}}
spec:
  triggers:
  - type: metrics-api
    metadata:
{{- if .Aggregate }}
      aggregate: "true"
{{- end }}
      policy: "{{.Policy}}"
      region: {{.Region}}
      queue: {{.Queue}}
~

	serviceTemplate = ~apiVersion: v1
kind: Service
metadata:
  name: dropped
~
)

func TestScaler(t *testing.T) {
	for _, n := range []int{1, 10} {
		data, templates := getTemplateData(n)
		CreateKubernetesResources(t, nil, testNamespace, data, templates)
		testPolicy(t, data)
	}
}

func testPolicy(t *testing.T, data templateData) {
	data.Policy = "earliest"
	KubectlApplyWithTemplate(t, data, "scaledObjectTemplate", scaledObjectTemplate)
}

func getTemplateData(replicas int) (templateData, []Template) {
	var aggregate bool
	if replicas > 1 {
		aggregate = true
	}
	return templateData{
			TestNamespace: testNamespace,
			SecretName:    secretName,
			Region:        region,
			Queue:         queue,
			Replicas:      replicas,
			Aggregate:     aggregate,
		}, []Template{
			{Name: "secretTemplate", Config: secretTemplate},
			{Name: "serviceTemplate", Config: serviceTemplate},
		}
}
`

func TestRender(t *testing.T) {
	keda := t.TempDir()
	write(t, filepath.Join(keda, "tests/helper/helper.go"), helperSource)
	// ~ stands for the backticks of the test file's raw strings.
	write(t, filepath.Join(keda, "tests/scalers/x/x_test.go"), strings.ReplaceAll(testSource, "~", "`"))
	out := t.TempDir()
	if err := run(keda, out); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(out, "scalers__x__x_test.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	got := string(raw)
	for _, want := range []string{
		"# KEDA v" + kedaVersion + " tests/scalers/x/x_test.go",
		"# Placeholder (known only when the test runs): us-east-1 = os.Getenv(\"TF_AWS_REGION\")",
		"# Placeholder (known only when the test runs): 4242 = GetRandomNumber()",
		"# template: secretTemplate\n# created with: getTemplateData\n",
		"  name: x-test-secret\n  namespace: x-test-ns\n",
		// The loop's first row: no aggregation; the policy testPolicy() sets first.
		"  name: so-1\n  namespace: x-test-ns\nspec:\n  triggers:\n  - type: metrics-api\n    metadata:\n      policy: \"earliest\"\n      region: us-east-1\n      queue: queue-4242",
		// The second row takes the condition's branch.
		"  name: so-10\n",
		"      aggregate: \"true\"\n      policy: \"earliest\"",
		"# data: templateData literal in getTemplateData(), with Policy set as testPolicy() sets them",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in:\n%s", want, got)
		}
	}
	if strings.Contains(got, "kind: Service\n") || strings.Contains(got, "<no value>") {
		t.Errorf("a Service or an unset field rendered:\n%s", got)
	}
	if n := strings.Count(got, "kind: Secret\n"); n != 1 {
		t.Errorf("the Secret rendered %d times (once per distinct output):\n%s", n, got)
	}
}

func write(t *testing.T, path, text string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}
