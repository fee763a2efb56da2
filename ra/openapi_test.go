package ra_test

import (
	"os"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/certcenter/certcenter/config"
	"github.com/certcenter/certcenter/ra"
)

// TestOpenAPIMatchesRoutes keeps api/openapi.yaml in step with the routes
// the RA registers: every route is documented, and every documented ra
// operation is a route.
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
	documented := map[string]bool{}
	for path, ops := range doc.Paths {
		for method, op := range ops {
			for _, tag := range op.Tags {
				if tag == "ra" {
					documented[strings.ToUpper(method)+" "+path] = true
				}
			}
		}
	}
	r, err := ra.New(ra.Options{Config: config.Default().RA})
	if err != nil {
		t.Fatal(err)
	}
	routed := map[string]bool{}
	for _, rt := range r.Routes() {
		routed[rt.Method+" "+rt.Pattern] = true
	}
	var missing, stale []string
	for k := range routed {
		if !documented[k] {
			missing = append(missing, k)
		}
	}
	for k := range documented {
		if !routed[k] {
			stale = append(stale, k)
		}
	}
	sort.Strings(missing)
	sort.Strings(stale)
	if len(missing) > 0 || len(stale) > 0 {
		t.Fatalf("api/openapi.yaml is out of step with ra.Routes():\n  routes not documented: %v\n  documented but not routed: %v", missing, stale)
	}
}
