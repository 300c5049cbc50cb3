package main

import (
	"strings"
	"testing"

	"github.com/tagway/tagway/internal/redistest"
)

func TestReadAdminSettings(t *testing.T) {
	tests := []struct {
		env  map[string]string
		want string // part of the error; "" for none
	}{
		{map[string]string{}, ""},
		{map[string]string{"TAGWAY_ADMIN_TOKEN": "short"}, "TAGWAY_ADMIN_TOKEN"},
		{map[string]string{"TAGWAY_SECRET_KEY": "not-a-key"}, "TAGWAY_SECRET_KEY"},
		{map[string]string{"TAGWAY_SECRET_KEY_PREVIOUS": secretKey}, "TAGWAY_SECRET_KEY_PREVIOUS is set"},
		{map[string]string{"TAGWAY_SECRET_KEY": secretKey, "TAGWAY_SECRET_KEY_PREVIOUS": "bad"}, "previous key 1"},
		{map[string]string{"TAGWAY_COUNTRY_HEADER": "CF IPCountry"}, "TAGWAY_COUNTRY_HEADER"},
		{map[string]string{"TAGWAY_ADMIN_TOKEN": adminToken, "TAGWAY_SECRET_KEY": secretKey, "TAGWAY_COUNTRY_HEADER": "CF-IPCountry"}, ""},
	}
	for _, tt := range tests {
		s, err := readAdminSettings(envOf(tt.env))
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%v: %v", tt.env, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%v: err %v; want %q", tt.env, err, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), secretKey) {
			t.Errorf("the error quotes the key")
		}
		if tt.env["TAGWAY_SECRET_KEY"] == secretKey && err == nil && s.Keyring == nil {
			t.Error("no keyring")
		}
	}
}

func TestCLIKeys(t *testing.T) {
	rs := redistest.Start(t)
	url, _ := startReplica(t, rs, map[string]string{"TAGWAY_ADMIN_TOKEN": adminToken})
	mustCLI(t, url, adminToken, "tenants", "apply", "-f", writeFile(t, "t.yaml", "id: agency\nname: Agency\n"))
	out := mustCLI(t, url, adminToken, "keys", "apply", "-f", writeFile(t, "k.yaml", "id: agency-ci\ntenant: agency\nrole: editor\n"))
	_, token, ok := strings.Cut(out, "token (shown once): ")
	token = strings.TrimSpace(token)
	if !ok || !strings.HasPrefix(token, "twk_agency-ci_") {
		t.Fatalf("keys apply: %s", out)
	}
	// The tenant key works, and sees only its tenant.
	mustCLI(t, url, token, "sites", "apply", "-f", writeFile(t, "s.yaml", "id: a-shop\ndomains: [a.example]\n"))
	if out := mustCLI(t, url, token, "sites", "list"); !strings.Contains(out, "a-shop") || strings.Contains(out, "default") {
		t.Errorf("tenant sites: %s", out)
	}
	if out, code := cli(t, url, token, "keys", "list"); code != 1 || !strings.Contains(out, "403") {
		t.Errorf("an editor listed keys: %d %s", code, out)
	}
	if out := mustCLI(t, url, adminToken, "keys", "list"); !strings.Contains(out, "agency-ci") || strings.Contains(out, token) {
		t.Errorf("keys list: %s", out)
	}
	if out := mustCLI(t, url, adminToken, "keys", "get", "agency-ci"); !strings.Contains(out, "role: editor") || strings.Contains(out, "hash") {
		t.Errorf("keys get: %s", out)
	}
	mustCLI(t, url, adminToken, "keys", "delete", "agency-ci")
	if out, code := cli(t, url, token, "sites", "list"); code != 1 || !strings.Contains(out, "401") {
		t.Errorf("a deleted key still works: %d %s", code, out)
	}
	if out := mustCLI(t, url, adminToken, "audit"); !strings.Contains(out, "create  key agency-ci") || !strings.Contains(out, "delete  key agency-ci") {
		t.Errorf("audit: %s", out)
	}
}
