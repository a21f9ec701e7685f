package daemon

import "runtime/debug"

// revision is the source revision, set at link time by make build (git
// describe): Go stamps the VCS revision itself only when building with VCS
// stamping on.
var revision string

// Version is the module version and VCS revision the binary was built from.
func Version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "fenceline (unknown build)"
	}
	v := "fenceline " + bi.Main.Version
	rev := revision
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && rev == "" {
			rev = s.Value
		}
	}
	if rev != "" {
		v += " " + rev
	}
	return v + " " + bi.GoVersion
}
