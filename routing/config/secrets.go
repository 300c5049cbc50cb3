package config

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/tagway/tagway/internal/secrets"
	"github.com/tagway/tagway/routing/model"
)

// localSecret stands in Redis for a secret kept only in this process's
// memory: one given by the operator's config file or environment while no
// TAGWAY_SECRET_KEY is set. Every replica reads the same file.
const localSecret = "tw-local-secret"

// secretErrorField replaces the settings of a destination whose secret
// cannot be decrypted here; adapters refuse the unknown field, so the
// destination stays idle and its events wait instead of going out without
// credentials.
const secretErrorField = "tagway_secret_error"

// openSecrets returns d's settings with its secrets decrypted. A secret that
// cannot be opened here makes the settings {"tagway_secret_error": why}, which
// no adapter accepts: the destination stays idle rather than sending without
// its credentials.
func (s *Store) openSecrets(d model.Destination) json.RawMessage {
	obj, ok := settingsObject(d.Settings)
	if !ok {
		return d.Settings
	}
	changed := false
	for k, v := range obj {
		var str string
		if !s.secretFields.IsSecret(d.Type, k) || json.Unmarshal(v, &str) != nil {
			continue
		}
		var plain string
		switch {
		case str == localSecret:
			p, ok := s.local(d.ID, k)
			if !ok {
				return secretError(k + " was given in another gateway's config file and is not in this one's; set TAGWAY_SECRET_KEY to share secrets through Redis")
			}
			plain = p
		case secrets.IsCiphertext(str):
			if s.keyring == nil {
				return secretError(k + " is encrypted and TAGWAY_SECRET_KEY is not set here")
			}
			p, err := s.keyring.Decrypt(str, secretAAD(d.ID, k))
			if err != nil {
				return secretError(k + ": " + err.Error())
			}
			plain = p
		default:
			continue // stored in clear by an older version
		}
		obj[k], _ = json.Marshal(plain)
		changed = true
	}
	if !changed {
		return d.Settings
	}
	b, _ := json.Marshal(obj)
	return b
}

func secretError(msg string) json.RawMessage {
	b, _ := json.Marshal(map[string]string{secretErrorField: msg})
	return b
}

func secretAAD(destID, field string) string { return "destination/" + destID + "/" + field }

// seal returns the stored form of one secret.
func (s *Store) seal(destID, name, plain, oldStored string, opts UpdateOptions, local map[string]map[string]string) (string, error) {
	aad := secretAAD(destID, name)
	if s.keyring != nil {
		if secrets.IsCiphertext(oldStored) && s.keyring.IsCurrent(oldStored) && !opts.Reencrypt {
			if p, err := s.keyring.Decrypt(oldStored, aad); err == nil && p == plain {
				return oldStored, nil
			}
		}
		return s.keyring.Encrypt(plain, aad)
	}
	if oldStored == localSecret {
		if p, ok := s.local(destID, name); ok && p == plain {
			return localSecret, nil
		}
	}
	if opts.LocalSecrets {
		return localSecret, nil
	}
	return "", fmt.Errorf("destination %q: settings.%s: %w", destID, name, ErrNoSecretKey)
}

func (s *Store) local(destID, name string) (string, bool) {
	s.localMu.Lock()
	defer s.localMu.Unlock()
	v, ok := s.localSecrets[destID][name]
	return v, ok
}

func (s *Store) setLocal(m map[string]map[string]string) {
	if s.keyring != nil || m == nil {
		return
	}
	s.localMu.Lock()
	defer s.localMu.Unlock()
	for id, fields := range m {
		s.localSecrets[id] = fields
	}
}

// RememberLocalSecrets keeps the secrets of cfg's destinations in process
// memory without writing anything, for a replica that starts on a store
// already seeded from the same config file while no keyring is set: Load
// then finds the secrets the placeholders stand for.
func (s *Store) RememberLocalSecrets(cfg model.Config) {
	if s.keyring != nil {
		return
	}
	m := map[string]map[string]string{}
	for _, d := range cfg.Destinations {
		obj, _ := settingsObject(d.Settings)
		for k, v := range obj {
			var str string
			if s.secretFields.IsSecret(d.Type, k) && json.Unmarshal(v, &str) == nil && str != "" {
				if m[d.ID] == nil {
					m[d.ID] = map[string]string{}
				}
				m[d.ID][k] = str
			}
		}
	}
	s.setLocal(m)
}

// RedactSettings removes every string value of settings (tokens, keys) from
// msg, in case an adapter quoted one in a validation error.
func RedactSettings(msg string, settings json.RawMessage) string {
	var v any
	if json.Unmarshal(settings, &v) != nil {
		return msg
	}
	var secrets []string
	var walk func(any)
	walk = func(v any) {
		switch v := v.(type) {
		case string:
			if len(v) >= 4 {
				secrets = append(secrets, v)
			}
		case []any:
			for _, e := range v {
				walk(e)
			}
		case map[string]any:
			for _, e := range v {
				walk(e)
			}
		}
	}
	walk(v)
	sort.Slice(secrets, func(i, j int) bool { return len(secrets[i]) > len(secrets[j]) })
	for _, s := range secrets {
		msg = strings.ReplaceAll(msg, s, "[redacted]")
	}
	return msg
}
