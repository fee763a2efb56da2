package server

import (
	"os"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/certcenter/certcenter/admin"
	"github.com/certcenter/certcenter/config"
	"github.com/certcenter/certcenter/ra"
)

// TestOpenAPIMatchesRoutes keeps api/openapi.yaml in step with the routes
// the RA and the admin API register, both ways: every route is documented
// under its package's tag, and every documented operation is a route.
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
	documented := map[string][]string{}
	for path, ops := range doc.Paths {
		for method, op := range ops {
			for _, tag := range op.Tags {
				documented[tag] = append(documented[tag], strings.ToUpper(method)+" "+path)
			}
		}
	}
	r, err := ra.New(ra.Options{Config: config.Default().RA})
	if err != nil {
		t.Fatal(err)
	}
	routed := map[string][]string{}
	for _, rt := range r.Routes() {
		routed["ra"] = append(routed["ra"], rt.Method+" "+rt.Pattern)
	}
	for _, rt := range admin.New(admin.Options{}).Routes() {
		routed["admin"] = append(routed["admin"], rt.Method+" "+rt.Pattern)
	}
	for _, tag := range []string{"ra", "admin"} {
		slices.Sort(documented[tag])
		slices.Sort(routed[tag])
		if !slices.Equal(documented[tag], routed[tag]) {
			t.Errorf("api/openapi.yaml %s operations are out of step with the routes:\n  documented %v\n  routed     %v", tag, documented[tag], routed[tag])
		}
	}
}
