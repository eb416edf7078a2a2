package httpapi

import "testing"

func TestLocalHostTakesLocalhostAndAddressesOnly(t *testing.T) {
	for host, want := range map[string]bool{
		"127.0.0.1:8080": true, "127.0.0.1": true, "[::1]:8080": true, "::1": true, "10.0.0.5:9464": true,
		"localhost:8080": true, "LOCALHOST": true, "localhost.": true, "app.localhost:8080": true, "": true,
		"rebound.attacker.example:8080": false, "localhost.attacker.example": false, "127.0.0.1.nip.io:8080": false,
		"mylocalhost:8080": false,
	} {
		if got := LocalHost(host); got != want {
			t.Errorf("LocalHost(%q) = %v, want %v", host, got, want)
		}
	}
}
