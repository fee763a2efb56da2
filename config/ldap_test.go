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
