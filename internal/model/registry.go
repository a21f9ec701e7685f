package model

// Registry is an immutable set of registered devices by id. A reload builds
// a new Registry and swaps it in whole.
type Registry struct {
	byID map[string]*Device
}

// NewRegistry indexes devices by id; later duplicates replace earlier ones
// (config validation rejects duplicates before this is called).
func NewRegistry(devices []Device) *Registry {
	r := &Registry{byID: make(map[string]*Device, len(devices))}
	for i := range devices {
		d := devices[i]
		r.byID[d.ID] = &d
	}
	return r
}

// Lookup returns the device with the given id, or nil.
func (r *Registry) Lookup(id string) *Device {
	if r == nil {
		return nil
	}
	return r.byID[id]
}

// Len is the number of registered devices.
func (r *Registry) Len() int {
	if r == nil {
		return 0
	}
	return len(r.byID)
}

// All calls fn for every device, in no particular order.
func (r *Registry) All(fn func(*Device)) {
	if r == nil {
		return
	}
	for _, d := range r.byID {
		fn(d)
	}
}
