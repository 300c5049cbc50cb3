package model

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"sigs.k8s.io/yaml"
)

// MaxConfigBytes bounds a configuration file.
const MaxConfigBytes = 4 << 20

// ParseConfig reads a declarative configuration in YAML or JSON (JSON is YAML,
// so one parser serves both). Decoding is strict: an unknown field anywhere is
// an error that names it. The result is validated.
func ParseConfig(data []byte) (Config, error) {
	cfg, err := DecodeConfig(data)
	if err != nil {
		return Config{}, err
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	return cfg, nil
}

// DecodeConfig reads a configuration like ParseConfig, strictly, but does
// not validate it: `tagway apply` sends a partial configuration (one
// tenant's sites, say) that is validated once merged with the stored one.
func DecodeConfig(data []byte) (Config, error) {
	if len(data) > MaxConfigBytes {
		return Config{}, fmt.Errorf("config: larger than %d bytes", MaxConfigBytes)
	}
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	var cfg Config
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		return Config{}, fmt.Errorf("config: %s", strings.TrimPrefix(err.Error(), "json: "))
	}
	if _, err := dec.Token(); err != io.EOF {
		return Config{}, fmt.Errorf("config: trailing data after the document")
	}
	return cfg, nil
}
