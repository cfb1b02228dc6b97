package local

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"
)

// EnvFile is a settings file in the format `sam local invoke --env-vars`
// reads: {"IngestFunction": {"KEY": "value"}, "FinalizeFunction": {...}},
// and optionally "Parameters" for settings every function gets.
type EnvFile struct {
	Path      string
	Functions map[string]map[string]string
}

// ReadEnvFile reads and checks an env-vars file. Values may be strings,
// numbers or booleans, as SAM accepts; they become their JSON text.
func ReadEnvFile(path string) (*EnvFile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("settings file: %w", err)
	}
	var raw map[string]map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("settings file %s: want {\"IngestFunction\": {\"NAME\": \"value\", …}, …} as sam local invoke --env-vars reads: %w", path, err)
	}
	f := &EnvFile{Path: path, Functions: map[string]map[string]string{}}
	for fn, vars := range raw {
		m := map[string]string{}
		for k, v := range vars {
			var s string
			switch {
			case json.Unmarshal(v, &s) == nil:
			case len(v) > 0 && (v[0] == '{' || v[0] == '['):
				return nil, fmt.Errorf("settings file %s: %s.%s must be a string, number or boolean (write JSON settings such as ROUTES as a string)", path, fn, k)
			default:
				s = strings.TrimSpace(string(v))
			}
			m[k] = s
		}
		f.Functions[fn] = m
	}
	return f, nil
}

// For returns function's settings: the file's Parameters, then the
// function's own entries, then live (the local servers' endpoints), then
// overrides (KEY=VALUE), each layer winning over the previous one.
func (f *EnvFile) For(function string, live map[string]string, overrides []string) map[string]string {
	m := map[string]string{}
	for _, layer := range []map[string]string{f.Functions["Parameters"], f.Functions[function], live} {
		for k, v := range layer {
			m[k] = v
		}
	}
	for _, kv := range overrides {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}
