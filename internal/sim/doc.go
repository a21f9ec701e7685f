// Package sim simulates the border sensors of a deployment from a scenario
// file (config/examples/scenario.yaml): phone e-fence units sensing the
// phones around protected sites, checkpoint cameras reading the plates of
// the vehicles on the roads, and patrol teams' trackers, all publishing the
// contract's MQTT messages, with scripted incidents that the rules must
// catch. cmd/fenceline-sim drives it; `make run` runs it against the daemon.
//
// # The world
//
// The devices are those of the scenario's rules file (ids, kinds, sites,
// registered positions), so the simulator and the daemon cannot disagree
// about them. Fence units scan every minute and report the phones present:
// visits arrive as Poisson processes whose rate follows the hour of the
// local day (the scenario's rhythm), in groups, from pools of regulars or
// as strangers, and stay a while. Vehicles make trips between the places on
// a road; each belongs to a fleet and starts its next trip where the last
// one ended, after a rest, and the cameras on the way see it at the times
// the road's length and its speed give. Patrols drive loops of waypoints,
// pausing at each, some parked at their station at night. Everything also
// sends a status every few minutes.
//
// Ordinary traffic is shaped not to trip the example rules (the scenario
// file lists how), so that every alert of a run belongs to a scripted
// incident. Incidents reserve their identifiers (plates, IMSIs) so that no
// ordinary vehicle or phone shares them, and ordinary identifiers avoid the
// rules file's watchlists.
//
// # Determinism
//
// A run is a discrete-event simulation on one queue ordered by simulated
// time, ties broken by the order events were scheduled. Each actor (device,
// arrival process, road, incident) draws from its own PCG stream seeded by
// the run's seed and its name, and nothing that reaches the output depends
// on Go's map iteration order. The same seed and start give the same
// messages, byte for byte.
//
// # Time
//
// Messages carry simulated times: ts is the event's time plus the device's
// processing delay, monotonic per device, seq goes up by one per message of
// a device. The daemon rejects a ts more than 5 minutes ahead of its clock
// and accepts old ones (alerts raised from them are marked late), so the
// simulated clock must never pass the real one: in real time a run starts
// now; accelerated (or unpaced, as fast as the broker acknowledges) it
// starts the run's duration ago, so that it reaches the present at the
// earliest at its end. CheckClock refuses a start that would break this.
// Incidents happen at offsets from the start, so a run shows them within
// its first hour whatever the hour; a rule with a night schedule is expected
// only for an incident that lasts into the scenario's night.
//
// Time-driven rules (silence) run on the daemon's processing time: a
// unit's silence is noticed expect_every of real time after its last
// message, also in an accelerated run.
package sim
