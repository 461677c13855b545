//! Spherical geometry for location bounds: great-circle distances, caps
//! (landmark discs), and the exact nearest and farthest feasible points from
//! a site.
//!
//! The feasible region is an intersection of caps. Its boundary is made of
//! arcs of the cap circles, so the distance from a site, over the region, is
//! extreme at one of: the site itself (nearest, if feasible), its antipode
//! (farthest, if feasible), the nearest or farthest point of a cap circle
//! from the site, or a point where two cap circles cross. Checking each such
//! candidate against every cap gives the exact extremes; if no candidate is
//! feasible the region is empty.

use thiserror::Error;

/// Mean Earth radius, km (IUGG).
pub const EARTH_RADIUS_KM: f64 = 6371.0088;
/// Speed of light in vacuum, km per ms.
pub const SPEED_OF_LIGHT_KM_PER_MS: f64 = 299.792_458;
/// Slack on every containment test, km, always widening the region.
pub const TOLERANCE_KM: f64 = 0.001;
/// Caps accepted in one computation.
pub const MAX_CAPS: usize = 64;

/// A point on the Earth's surface.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    /// Degrees north, -90 to 90.
    pub latitude: f64,
    /// Degrees east, -180 to 180.
    pub longitude: f64,
}

/// A disc on the sphere: every point within `radius_km` (great circle) of
/// `center`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cap {
    /// The landmark or site.
    pub center: Point,
    /// Great-circle radius, km.
    pub radius_km: f64,
}

/// Input that cannot be computed with.
#[derive(Debug, Error, PartialEq)]
#[non_exhaustive]
pub enum GeoError {
    /// A coordinate outside its range or not finite.
    #[error("coordinate ({latitude}, {longitude}) is out of range")]
    Coordinate {
        /// As given.
        latitude: f64,
        /// As given.
        longitude: f64,
    },
    /// A radius or round trip that is negative or not finite.
    #[error("{what} of {value} is not a finite non-negative number")]
    Negative {
        /// Which quantity.
        what: &'static str,
        /// As given.
        value: f64,
    },
    /// More caps than [`MAX_CAPS`].
    #[error("{0} measurements exceed the limit of {MAX_CAPS}")]
    TooMany(usize),
    /// No caps at all.
    #[error("no measurements")]
    Empty,
}

/// Where the feasible region lies relative to a site.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Feasible {
    /// No point is in every cap: the measurements contradict each other.
    Empty,
    /// The nearest and farthest feasible points from the site, km.
    Region {
        /// Smallest distance from the site to a feasible point.
        nearest_km: f64,
        /// Largest distance from the site to a feasible point.
        farthest_km: f64,
    },
}

type V3 = [f64; 3];

impl Point {
    /// A checked point.
    pub fn new(latitude: f64, longitude: f64) -> Result<Self, GeoError> {
        let ok = latitude.is_finite()
            && longitude.is_finite()
            && (-90.0..=90.0).contains(&latitude)
            && (-180.0..=180.0).contains(&longitude);
        if ok {
            Ok(Self {
                latitude,
                longitude,
            })
        } else {
            Err(GeoError::Coordinate {
                latitude,
                longitude,
            })
        }
    }

    /// Great-circle distance, km.
    pub fn distance_km(&self, other: &Self) -> f64 {
        angle(&self.unit(), &other.unit()) * EARTH_RADIUS_KM
    }

    fn unit(&self) -> V3 {
        let (lat, lon) = (self.latitude.to_radians(), self.longitude.to_radians());
        [lat.cos() * lon.cos(), lat.cos() * lon.sin(), lat.sin()]
    }

    fn from_unit(v: &V3) -> Self {
        let v = normalize(v);
        Self {
            latitude: v[2].clamp(-1.0, 1.0).asin().to_degrees(),
            longitude: v[1].atan2(v[0]).to_degrees(),
        }
    }
}

impl Cap {
    /// The cap a landmark at `center` proves from a round trip of `rtt_ms`
    /// at signal speed `speed_km_per_ms`: the straight-line bound
    /// `rtt / 2 × speed`, as the great-circle radius of the same cap.
    pub fn from_round_trip(
        center: Point,
        rtt_ms: f64,
        speed_km_per_ms: f64,
    ) -> Result<Self, GeoError> {
        if !(rtt_ms.is_finite() && rtt_ms >= 0.0) {
            return Err(GeoError::Negative {
                what: "round trip",
                value: rtt_ms,
            });
        }
        let chord = rtt_ms / 2.0 * speed_km_per_ms;
        let half = (chord / (2.0 * EARTH_RADIUS_KM)).min(1.0);
        Ok(Self {
            center,
            radius_km: 2.0 * EARTH_RADIUS_KM * half.asin(),
        })
    }

    /// Whether `p` lies in the cap, with the widening tolerance.
    pub fn contains(&self, p: &Point) -> bool {
        self.center.distance_km(p) <= self.radius_km + TOLERANCE_KM
    }

    fn angular_radius(&self) -> f64 {
        (self.radius_km / EARTH_RADIUS_KM).min(std::f64::consts::PI)
    }
}

/// The nearest and farthest points of the intersection of `caps` from
/// `site`, exactly (up to floating point and the tolerance).
pub fn feasible_region(caps: &[Cap], site: &Point) -> Result<Feasible, GeoError> {
    if caps.is_empty() {
        return Err(GeoError::Empty);
    }
    if caps.len() > MAX_CAPS {
        return Err(GeoError::TooMany(caps.len()));
    }
    for cap in caps {
        Point::new(cap.center.latitude, cap.center.longitude)?;
        if !(cap.radius_km.is_finite() && cap.radius_km >= 0.0) {
            return Err(GeoError::Negative {
                what: "radius",
                value: cap.radius_km,
            });
        }
    }
    let in_all = |p: &Point| caps.iter().all(|c| c.contains(p));

    let s = site.unit();
    let antipode = Point::from_unit(&[-s[0], -s[1], -s[2]]);
    let mut candidates: Vec<Point> = Vec::new();
    for (i, a) in caps.iter().enumerate() {
        let (near, far) = circle_extremes(a, &s);
        candidates.extend([near, far]);
        for b in &caps[i + 1..] {
            candidates.extend(circle_crossings(a, b));
        }
    }
    let feasible: Vec<f64> = candidates
        .iter()
        .filter(|p| in_all(p))
        .map(|p| site.distance_km(p))
        .collect();

    let site_in = in_all(site);
    let antipode_in = in_all(&antipode);
    if feasible.is_empty() && !site_in && !antipode_in {
        return Ok(Feasible::Empty);
    }
    let nearest_km = if site_in {
        0.0
    } else {
        feasible.iter().copied().fold(f64::INFINITY, f64::min)
    };
    let farthest_km = if antipode_in {
        std::f64::consts::PI * EARTH_RADIUS_KM
    } else {
        feasible.iter().copied().fold(0.0, f64::max)
    };
    Ok(Feasible::Region {
        nearest_km,
        farthest_km,
    })
}

/// The points of a cap's circle nearest to and farthest from `s`.
fn circle_extremes(cap: &Cap, s: &V3) -> (Point, Point) {
    let c = cap.center.unit();
    let r = cap.angular_radius();
    // The tangent at the centre pointing towards s; any tangent if s is the
    // centre or its antipode, where every circle point is equally far.
    let toward = sub(s, &scale(&c, dot(s, &c)));
    let t = if norm(&toward) > 1e-12 {
        normalize(&toward)
    } else {
        any_orthogonal(&c)
    };
    let near = add(&scale(&c, r.cos()), &scale(&t, r.sin()));
    let far = sub(&scale(&c, r.cos()), &scale(&t, r.sin()));
    (Point::from_unit(&near), Point::from_unit(&far))
}

/// Where two caps' circles cross: none, or two points (one if tangent).
fn circle_crossings(a: &Cap, b: &Cap) -> Vec<Point> {
    let (u, v) = (a.center.unit(), b.center.unit());
    let c = dot(&u, &v).clamp(-1.0, 1.0);
    let det = 1.0 - c * c;
    if det < 1e-15 {
        return Vec::new();
    }
    let (ca, cb) = (a.angular_radius().cos(), b.angular_radius().cos());
    let x = (ca - c * cb) / det;
    let y = (cb - c * ca) / det;
    let w = cross(&u, &v);
    let in_plane = add(&scale(&u, x), &scale(&v, y));
    let z2 = (1.0 - dot(&in_plane, &in_plane)) / dot(&w, &w);
    if z2 < -1e-12 {
        return Vec::new();
    }
    let z = z2.max(0.0).sqrt();
    vec![
        Point::from_unit(&add(&in_plane, &scale(&w, z))),
        Point::from_unit(&sub(&in_plane, &scale(&w, z))),
    ]
}

fn angle(a: &V3, b: &V3) -> f64 {
    norm(&cross(a, b)).atan2(dot(a, b))
}

fn dot(a: &V3, b: &V3) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

fn cross(a: &V3, b: &V3) -> V3 {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

fn add(a: &V3, b: &V3) -> V3 {
    [a[0] + b[0], a[1] + b[1], a[2] + b[2]]
}

fn sub(a: &V3, b: &V3) -> V3 {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

fn scale(a: &V3, k: f64) -> V3 {
    [a[0] * k, a[1] * k, a[2] * k]
}

fn norm(a: &V3) -> f64 {
    dot(a, a).sqrt()
}

fn normalize(a: &V3) -> V3 {
    let n = norm(a);
    if n == 0.0 {
        [1.0, 0.0, 0.0]
    } else {
        scale(a, 1.0 / n)
    }
}

fn any_orthogonal(c: &V3) -> V3 {
    let axis = if c[0].abs() < 0.9 {
        [1.0, 0.0, 0.0]
    } else {
        [0.0, 1.0, 0.0]
    };
    normalize(&cross(c, &axis))
}

#[cfg(test)]
mod tests;
