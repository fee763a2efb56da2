package config

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// structKeys lists the dotted path of every key the Config type accepts.
// Lists and maps are leaves: the example shows them as one key.
func structKeys(t reflect.Type, prefix string, out map[string]bool) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || t == reflect.TypeOf(Duration(0)) {
		return
	}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		p := name
		if prefix != "" {
			p = prefix + "." + name
		}
		out[p] = true
		structKeys(f.Type, p, out)
	}
}

// yamlKeys lists the dotted path of every mapping key in a YAML tree,
// without descending into sequences.
func yamlKeys(n *yaml.Node, prefix string, out map[string]bool) {
	if n.Kind == yaml.DocumentNode {
		for _, c := range n.Content {
			yamlKeys(c, prefix, out)
		}
		return
	}
	if n.Kind != yaml.MappingNode {
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		p := n.Content[i].Value
		if prefix != "" {
			p = prefix + "." + p
		}
		out[p] = true
		yamlKeys(n.Content[i+1], p, out)
	}
}

func missingFrom(have, want map[string]bool) []string {
	var out []string
	for k := range want {
		if !have[k] {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// certcenter.example.yaml claims to list every key: it must name each key
// the Config type accepts, and nothing else; and it must load.
func TestExampleListsEveryKey(t *testing.T) {
	path := filepath.Join("..", "certcenter.example.yaml")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	inExample, inType := map[string]bool{}, map[string]bool{}
	yamlKeys(&root, "", inExample)
	structKeys(reflect.TypeOf(Config{}), "", inType)
	if m := missingFrom(inExample, inType); len(m) > 0 {
		t.Errorf("%s lacks %d keys of config.Config:\n  %s", path, len(m), strings.Join(m, "\n  "))
	}
	if m := missingFrom(inType, inExample); len(m) > 0 {
		t.Errorf("%s names %d keys config.Config does not have:\n  %s", path, len(m), strings.Join(m, "\n  "))
	}
	if _, err := Parse(b); err != nil {
		t.Errorf("%s does not load: %v", path, err)
	}
}
