// Package zone compiles the geofences of the rules file and answers
// which zones contain a point.
package zone
