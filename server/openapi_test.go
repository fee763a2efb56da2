package server

import (
	"os"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/certcenter/certcenter/admin"
	"github.com/certcenter/certcenter/config"
	"github.com/certcenter/certcenter/desk"
	"github.com/certcenter/certcenter/desk/kb"
	"github.com/certcenter/certcenter/internal/httpapi"
	"github.com/certcenter/certcenter/internal/seed"
	"github.com/certcenter/certcenter/ra"
	"github.com/certcenter/certcenter/token"
)

// TestOpenAPIMatchesRoutes keeps api/openapi.yaml in step with the route
// tables of the RA and the admin API, both ways: every route is documented
// once, under its package's tag, public exactly when the document says it
// needs no credential (security: []), and every documented operation is a
// route.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	b, err := os.ReadFile("../api/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths map[string]map[string]struct {
			Tags     []string `yaml:"tags"`
			Security *[]any   `yaml:"security"`
		} `yaml:"paths"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("api/openapi.yaml: %v", err)
	}
	documented := map[string][]string{}
	public := map[string]bool{}
	for path, ops := range doc.Paths {
		for method, op := range ops {
			key := strings.ToUpper(method) + " " + path
			if len(op.Tags) != 1 {
				t.Errorf("api/openapi.yaml %s has tags %v; want exactly one (ra, admin or seed)", key, op.Tags)
			}
			for _, tag := range op.Tags {
				documented[tag] = append(documented[tag], key)
			}
			public[key] = op.Security != nil && len(*op.Security) == 0
		}
	}
	r, err := ra.New(ra.Options{Config: config.Default().RA})
	if err != nil {
		t.Fatal(err)
	}
	dk, err := desk.New(desk.Options{Config: config.Default().Desk})
	if err != nil {
		t.Fatal(err)
	}
	tables := map[string][]httpapi.Route{"ra": r.Routes(), "admin": admin.New(admin.Options{}).Routes(), "desk": dk.Routes()}
	tok, err := token.New(token.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tables["token"] = tok.Routes()
	tables["kb"] = kb.NewAPI(kb.APIOptions{}).Routes()
	tables["seed"] = (&seed.API{}).Routes()
	routed := map[string][]string{}
	seen := map[string]string{}
	for tag, routes := range tables {
		for _, rt := range routes {
			key := rt.Method + " " + rt.Pattern
			if other, dup := seen[key]; dup {
				t.Errorf("%s is routed by both %s and %s", key, other, tag)
			}
			seen[key] = tag
			routed[tag] = append(routed[tag], key)
			if public[key] != rt.Access.Public {
				t.Errorf("%s: routed public=%v, documented public (security: []) = %v", key, rt.Access.Public, public[key])
			}
		}
	}
	for _, tag := range []string{"ra", "admin", "desk", "token", "kb", "seed"} {
		slices.Sort(documented[tag])
		slices.Sort(routed[tag])
		if !slices.Equal(documented[tag], routed[tag]) {
			t.Errorf("api/openapi.yaml %s operations are out of step with the routes:\n  documented %v\n  routed     %v", tag, documented[tag], routed[tag])
		}
	}
}
