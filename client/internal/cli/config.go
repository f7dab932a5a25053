package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// DefaultURL is the edge ce talks to when nothing else is said: the all-in-one of make run.
const DefaultURL = "http://127.0.0.1:8080"

// settings is what ce login stores: config dir/codeexec/config.json, mode 0600.
type settings struct {
	URL    string `json:"url,omitempty"`
	APIKey string `json:"apiKey,omitempty"`
}

func (e Env) settingsPath() (string, error) {
	dir, err := e.ConfigDir()
	if err != nil {
		return "", fmt.Errorf("find the config dir: %w", err)
	}
	return filepath.Join(dir, "codeexec", "config.json"), nil
}

// loadSettings reads the stored settings; none stored is no error.
func (e Env) loadSettings() (settings, error) {
	var s settings
	path, err := e.settingsPath()
	if err != nil {
		return s, err
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return s, fmt.Errorf("read settings: %w", err)
	}
	if err := json.Unmarshal(data, &s); err != nil {
		return s, fmt.Errorf("read settings %s: %w", path, err)
	}
	return s, nil
}

// saveSettings writes the settings readable by their owner only (0600, in a 0700 dir),
// through a temporary file renamed into place.
func (e Env) saveSettings(s settings) (string, error) {
	path, err := e.settingsPath()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", fmt.Errorf("make settings dir: %w", err)
	}
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".config-*.json")
	if err != nil {
		return "", fmt.Errorf("write settings: %w", err)
	}
	defer os.Remove(tmp.Name()) // after the rename: nothing to remove
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return "", fmt.Errorf("write settings: %w", err)
	}
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return "", fmt.Errorf("write settings: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("write settings: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", fmt.Errorf("write settings: %w", err)
	}
	return path, nil
}

// connection is where ce talks to and with which key: flag, then CODEEXEC_URL and
// CODEEXEC_API_KEY, then what ce login stored, then DefaultURL.
func (e Env) connection(urlFlag string) (url, key string, err error) {
	s, err := e.loadSettings()
	if err != nil {
		return "", "", err
	}
	url = firstOf(urlFlag, e.Getenv("CODEEXEC_URL"), s.URL, DefaultURL)
	key = firstOf(e.Getenv("CODEEXEC_API_KEY"), s.APIKey)
	return url, key, nil
}

func firstOf(values ...string) string {
	for _, v := range values {
		if v != "" {
			return v
		}
	}
	return ""
}
