package admin_test

import (
	"os"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/certcenter/certcenter/admin"
)

// TestOpenAPIMatchesRoutes keeps api/openapi.yaml's admin operations and the
// registered routes in step, both ways.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	b, err := os.ReadFile("../api/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths map[string]map[string]struct {
			Tags []string `yaml:"tags"`
		} `yaml:"paths"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("api/openapi.yaml: %v", err)
	}
	var documented, routed []string
	for path, ops := range doc.Paths {
		for method, op := range ops {
			if slices.Contains(op.Tags, "admin") {
				documented = append(documented, strings.ToUpper(method)+" "+path)
			}
		}
	}
	for _, rt := range admin.New(admin.Options{}).Routes() {
		routed = append(routed, rt.Method+" "+rt.Pattern)
	}
	slices.Sort(documented)
	slices.Sort(routed)
	if !slices.Equal(documented, routed) {
		t.Errorf("api/openapi.yaml admin operations %v\nroutes %v", documented, routed)
	}
}
