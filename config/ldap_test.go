package config

import (
	"slices"
	"strings"
	"testing"
)

func TestLDAPHiddenAttributes(t *testing.T) {
	tests := []struct {
		name    string
		yaml    string
		want    []string
		wantErr string
	}{
		{name: "ok/default hides the ID number", yaml: "", want: []string{"serialNumber"}},
		{name: "ok/publish everything", yaml: "ldap:\n  hidden_attributes: []\n", want: []string{}},
		{name: "ok/hide mail too", yaml: "ldap:\n  hidden_attributes: [serialNumber, MAIL]\n", want: []string{"serialNumber", "MAIL"}},
		{name: "fail/the RDN's attribute", yaml: "ldap:\n  hidden_attributes: [cn]\n", wantErr: "ldap.hidden_attributes[0]"},
		{name: "fail/unknown attribute", yaml: "ldap:\n  hidden_attributes: [serialNumber, idNumber]\n", wantErr: "ldap.hidden_attributes[1]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.yaml))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(c.LDAP.HiddenAttributes, tt.want) {
				t.Errorf("hidden_attributes = %q, want %q", c.LDAP.HiddenAttributes, tt.want)
			}
		})
	}
}

func TestLDAPAccessRules(t *testing.T) {
	tests := []struct {
		name, yaml, wantErr string
	}{
		{name: "ok/default is the demo's", yaml: ""},
		{name: "ok/production", yaml: "ldap:\n  anonymous_people: none\n"},
		{name: "ok/profiles", yaml: "ldap:\n  anonymous_people: profiles\n  anonymous_profiles: [organization]\n"},
		{name: "fail/unknown mode", yaml: "ldap:\n  anonymous_people: some\n", wantErr: "ldap.anonymous_people"},
		{name: "fail/profiles without a profile", yaml: "ldap:\n  anonymous_people: profiles\n", wantErr: "ldap.anonymous_profiles"},
		{name: "fail/empty profile", yaml: "ldap:\n  anonymous_profiles: [\"\"]\n", wantErr: "ldap.anonymous_profiles[0]"},
		{name: "fail/unknown public attribute", yaml: "ldap:\n  public_attributes: [cn, telephoneNumber]\n", wantErr: "ldap.public_attributes[1]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.yaml))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.yaml == "" && (c.LDAP.AnonymousPeople != AnonymousPeopleAll || slices.Contains(c.LDAP.PublicAttributes, "serialNumber")) {
				t.Errorf("defaults: %q %q", c.LDAP.AnonymousPeople, c.LDAP.PublicAttributes)
			}
		})
	}
}
