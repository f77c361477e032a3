//! Readable generated app names, Heroku style: `brave-river-4821`.

use rand::Rng;

const ADJECTIVES: &[&str] = &[
    "amber",
    "ancient",
    "autumn",
    "bold",
    "brave",
    "bright",
    "calm",
    "crimson",
    "damp",
    "dawn",
    "eager",
    "falling",
    "fancy",
    "frosty",
    "gentle",
    "golden",
    "green",
    "hidden",
    "holy",
    "icy",
    "jolly",
    "late",
    "lively",
    "lucky",
    "misty",
    "morning",
    "nameless",
    "noble",
    "old",
    "patient",
    "polished",
    "proud",
    "quiet",
    "rapid",
    "restless",
    "rough",
    "shy",
    "silent",
    "snowy",
    "solitary",
    "sparkling",
    "spring",
    "still",
    "summer",
    "swift",
    "tiny",
    "twilight",
    "wandering",
    "weathered",
    "wild",
    "winter",
    "young",
];

const NOUNS: &[&str] = &[
    "bird",
    "breeze",
    "brook",
    "butterfly",
    "cherry",
    "cloud",
    "dawn",
    "dew",
    "dream",
    "dust",
    "feather",
    "field",
    "fire",
    "firefly",
    "flower",
    "fog",
    "forest",
    "frog",
    "glade",
    "glitter",
    "grass",
    "haze",
    "hill",
    "lake",
    "leaf",
    "meadow",
    "moon",
    "mountain",
    "night",
    "paper",
    "pine",
    "pond",
    "rain",
    "resonance",
    "river",
    "sea",
    "shadow",
    "shape",
    "silence",
    "sky",
    "smoke",
    "snow",
    "sound",
    "star",
    "sun",
    "sunset",
    "surf",
    "thunder",
    "tree",
    "violet",
    "water",
    "wave",
    "wildflower",
    "wind",
    "wood",
];

pub fn generate() -> String {
    let mut rng = rand::rng();
    format!(
        "{}-{}-{:04}",
        ADJECTIVES[rng.random_range(0..ADJECTIVES.len())],
        NOUNS[rng.random_range(0..NOUNS.len())],
        rng.random_range(0..10_000)
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn generated_names_are_valid_app_names() {
        for _ in 0..500 {
            let n = super::generate();
            assert!(crate::domain::AppName::parse(&n).is_ok(), "{n}");
        }
    }
}
