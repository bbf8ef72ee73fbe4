//! Docker-style random names (`adjective_surname`) for unnamed containers.

const LEFT: &[&str] = &[
    "admiring",
    "brave",
    "clever",
    "dazzling",
    "eager",
    "focused",
    "gallant",
    "happy",
    "jolly",
    "keen",
    "loving",
    "modest",
    "nifty",
    "optimistic",
    "pensive",
    "quirky",
    "relaxed",
    "serene",
    "tender",
    "upbeat",
    "vibrant",
    "wizardly",
    "zealous",
    "bold",
    "calm",
    "epic",
    "festive",
    "gifted",
    "hopeful",
    "inspiring",
];
const RIGHT: &[&str] = &[
    "albattani",
    "babbage",
    "curie",
    "darwin",
    "einstein",
    "feynman",
    "galileo",
    "hopper",
    "lovelace",
    "meitner",
    "noether",
    "pasteur",
    "ritchie",
    "shannon",
    "thompson",
    "turing",
    "wozniak",
    "yalow",
    "kepler",
    "lamarr",
    "torvalds",
    "knuth",
    "dijkstra",
    "hamilton",
    "goldwasser",
    "liskov",
    "mirzakhani",
    "ramanujan",
    "sinoussi",
    "wu",
];

/// A name not in `taken`.
pub fn generate(taken: &[String]) -> String {
    let mut seed = [0u8; 8];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = f.read_exact(&mut seed);
    }
    let mut n = u64::from_le_bytes(seed);
    loop {
        let l = LEFT[(n % LEFT.len() as u64) as usize];
        let r = RIGHT[((n / 31) % RIGHT.len() as u64) as usize];
        let name = format!("{l}_{r}");
        if !taken.contains(&name) {
            return name;
        }
        let suffixed = format!("{name}{}", n % 10);
        if !taken.contains(&suffixed) {
            return suffixed;
        }
        n = n
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
    }
}
