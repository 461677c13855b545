//! `chipward-location-study`: how well signed round trips to landmarks
//! bound where chips are, over many simulated placements. For each landmark
//! spacing and count it places chips at their licensed site and chips moved
//! away (directly connected, or behind a relay at the site that forwards the
//! landmark's challenge), runs the location check with the speed of light,
//! and prints the share certified, the share of moved chips not certified by
//! distance moved, the median certified radius, and every false pass (a chip
//! outside its geofence certified), which must be zero.

use chipward_device_sim::fleet::SITES;
use chipward_device_sim::geography::{
    NetworkModel, Rng, appraise_location, destination, landmark_ring,
};
use chipward_verifier::location::{Cap, LocationVerdict, Point};
use clap::Parser;

#[derive(Parser)]
#[command(about = "Location bounds by signed round trips: a study over simulated placements")]
struct Args {
    /// Placements per configuration and case.
    #[arg(long, default_value_t = 1_000)]
    placements: usize,
    /// Random seed; the same seed gives the same table.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Licensed site radius, km.
    #[arg(long, default_value_t = 100.0)]
    radius_km: f64,
}

/// Landmark spacings from the site, km.
const SPACINGS: [f64; 5] = [10.0, 25.0, 50.0, 100.0, 200.0];
/// Landmarks per site.
const COUNTS: [usize; 3] = [3, 4, 6];
/// How far moved chips are taken from their site, km.
const MOVES: [f64; 4] = [150.0, 300.0, 1_000.0, 5_000.0];

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(args.placements > 0, "--placements must be positive");
    anyhow::ensure!(
        args.radius_km > 0.0 && args.radius_km < MOVES[0],
        "--radius-km must be in (0, 150)"
    );
    let network = NetworkModel::default();
    let mut rng = Rng::new(args.seed);
    let (mut total, mut false_passes) = (0usize, 0usize);

    println!(
        "placements {} per case, site radius {} km, seed {}; network: fiber 2/3 c, paths x{:.1}-{:.1}, \
         {} ms queue per {} km hop, {} ms jitter, chip reply {}-{} ms",
        args.placements,
        args.radius_km,
        args.seed,
        network.inflation.0,
        network.inflation.1,
        network.queue_ms,
        network.km_per_hop,
        network.jitter_ms,
        network.processing_ms.0,
        network.processing_ms.1
    );
    println!(
        "\n| spacing km | landmarks | at site certified | median certified radius km | moved 150 km not certified | 300 km | 1000 km | 5000 km | false passes |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for spacing in SPACINGS {
        for count in COUNTS {
            let mut certified_radii = Vec::new();
            let mut at_site_certified = 0usize;
            let mut moved_not_certified = [0usize; MOVES.len()];
            let mut row_false = 0usize;
            for i in 0..args.placements {
                let spec = &SITES[i % SITES.len()];
                let center = Point {
                    latitude: spec.latitude,
                    longitude: spec.longitude,
                };
                let site = Cap {
                    center,
                    radius_km: args.radius_km,
                };
                let landmarks = landmark_ring(&center, spacing, count, rng.between((0.0, 360.0)));

                // A chip at its site: uniformly within half the site radius.
                let r = args.radius_km / 2.0 * rng.unit().sqrt();
                let chip = destination(&center, rng.between((0.0, 360.0)), r);
                if let LocationVerdict::Inside { farthest_km, .. } =
                    appraise_location(&landmarks, &chip, None, &site, &network, &mut rng)?
                {
                    at_site_certified += 1;
                    certified_radii.push(farthest_km);
                }

                // Moved chips, half of them behind a relay at the site.
                for (m, km) in MOVES.iter().enumerate() {
                    let moved = destination(&center, rng.between((0.0, 360.0)), *km);
                    let relay = (i % 2 == 0).then_some(&center);
                    let verdict =
                        appraise_location(&landmarks, &moved, relay, &site, &network, &mut rng)?;
                    total += 1;
                    match verdict {
                        LocationVerdict::Inside { .. } => row_false += 1,
                        _ => moved_not_certified[m] += 1,
                    }
                }
            }
            false_passes += row_false;
            certified_radii.sort_by(f64::total_cmp);
            let median = certified_radii
                .get(certified_radii.len() / 2)
                .map(|r| format!("{r:.1}"));
            let share = |n: usize| format!("{:.1}%", 100.0 * n as f64 / args.placements as f64);
            println!(
                "| {spacing} | {count} | {} | {} | {} | {} | {} | {} | {row_false} |",
                share(at_site_certified),
                median.unwrap_or_else(|| "-".into()),
                share(moved_not_certified[0]),
                share(moved_not_certified[1]),
                share(moved_not_certified[2]),
                share(moved_not_certified[3]),
            );
        }
    }
    println!("\nmoved placements appraised: {total}; false passes: {false_passes}");
    anyhow::ensure!(
        false_passes == 0,
        "a chip outside its geofence was certified"
    );
    Ok(())
}
