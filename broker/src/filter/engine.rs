//! The matching engine: word lists compiled into one Aho-Corasick automaton
//! over folded text.
//!
//! Role: [`Compiled::new`] folds every word (see [`fold_char`]) and builds ONE
//! automaton over the distinct folded words of every list; [`Compiled::check`]
//! folds a text the same way, finds every occurrence of every word (also
//! overlapping ones, so a short word inside a longer one of another list is
//! never hidden) and returns a [`Verdict`].
//!
//! Folding (spec [SW-2]): full-width ASCII U+FF01..=U+FF5E → U+0021..=U+007E,
//! the ideographic space U+3000 → U+0020, then Unicode lowercase. Matching is
//! by substring, so text without word boundaries (Chinese, Japanese) matches.
//!
//! Invariants: a folded byte always maps back to the original char it came
//! from, so a mask covers exactly the original chars of a match (each one
//! replaced by the list's mask, whatever its UTF-8 length); a word present in
//! several lists counts for each of them; `block` wins over everything.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use serde::{Deserialize, Serialize};

/// What a list does with a text that contains one of its words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Refuse the request (3008 CONTENT_BLOCKED).
    Block,
    /// Store the text with every matched char masked.
    Replace,
    /// Deliver unchanged; report the list (e.g. a `message.flagged` event).
    Flag,
}

impl Action {
    /// The lowercase name used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Block => "block",
            Self::Replace => "replace",
            Self::Flag => "flag",
        }
    }
}

/// The default mask: one `*` per matched char.
pub const DEFAULT_MASK: &str = "*";

/// One named word list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WordList {
    /// 1..=64 of `[A-Za-z0-9_.-]`.
    pub name: String,
    pub action: Action,
    /// Replaces each matched char (`replace` lists).
    pub mask: String,
    pub words: Vec<String>,
}

/// The outcome of one check.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    /// The first `block` match: (list name, word as listed).
    pub blocked: Option<(String, String)>,
    /// The text with every `replace` match masked (`None`: nothing to mask,
    /// or blocked).
    pub replaced: Option<String>,
    /// Names of the `flag` lists that matched, in list order, once each.
    pub flagged: Vec<String>,
}

impl Verdict {
    /// Whether nothing matched.
    pub fn is_clean(&self) -> bool {
        self.blocked.is_none() && self.replaced.is_none() && self.flagged.is_empty()
    }
}

/// Folds one char into `out` (spec [SW-2]).
pub fn fold_char(c: char, out: &mut String) {
    let c = match c as u32 {
        0xFF01..=0xFF5E => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
        0x3000 => ' ',
        _ => c,
    };
    if c.is_ascii() {
        out.push(c.to_ascii_lowercase());
    } else {
        out.extend(c.to_lowercase());
    }
}

/// The folded form of `s`.
pub fn fold(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        fold_char(c, &mut out);
    }
    out
}

/// `s` folded, with, for every folded byte, the index of the original char
/// it came from; and the byte range of every original char.
fn fold_mapped(s: &str) -> (String, Vec<u32>, Vec<(usize, usize)>) {
    let mut out = String::with_capacity(s.len());
    let mut owner = Vec::with_capacity(s.len());
    let mut chars = Vec::with_capacity(s.len());
    for (i, (at, c)) in s.char_indices().enumerate() {
        fold_char(c, &mut out);
        owner.resize(out.len(), i as u32);
        chars.push((at, at + c.len_utf8()));
    }
    (out, owner, chars)
}

/// The lists, compiled.
#[derive(Debug)]
pub struct Compiled {
    lists: Vec<WordList>,
    /// `None` when there is no word at all.
    ac: Option<AhoCorasick>,
    /// Per automaton pattern: (list index, word index) of every list holding it.
    owners: Vec<Vec<(u32, u32)>>,
}

impl Default for Compiled {
    fn default() -> Self {
        Self::empty()
    }
}

impl Compiled {
    /// No list.
    pub fn empty() -> Self {
        Self { lists: Vec::new(), ac: None, owners: Vec::new() }
    }

    /// Compiles `lists` (sorted by name; words that fold to "" are ignored).
    pub fn new(mut lists: Vec<WordList>) -> Result<Self, String> {
        lists.sort_by(|a, b| a.name.cmp(&b.name));
        let mut index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
        let mut patterns: Vec<String> = Vec::new();
        let mut owners: Vec<Vec<(u32, u32)>> = Vec::new();
        for (li, list) in lists.iter().enumerate() {
            for (wi, w) in list.words.iter().enumerate() {
                let f = fold(w);
                if f.is_empty() {
                    continue;
                }
                let p = *index.entry(f.clone()).or_insert_with(|| {
                    patterns.push(f);
                    owners.push(Vec::new());
                    patterns.len() - 1
                });
                owners[p].push((li as u32, wi as u32));
            }
        }
        let ac = if patterns.is_empty() {
            None
        } else {
            Some(
                AhoCorasickBuilder::new()
                    .match_kind(MatchKind::Standard)
                    .build(&patterns)
                    .map_err(|e| format!("cannot compile the word lists: {e}"))?,
            )
        };
        Ok(Self { lists, ac, owners })
    }

    /// The lists, sorted by name.
    pub fn lists(&self) -> &[WordList] {
        &self.lists
    }

    /// Whether no text can match.
    pub fn is_empty(&self) -> bool {
        self.ac.is_none()
    }

    /// Checks `text` against every list.
    pub fn check(&self, text: &str) -> Verdict {
        let mut v = Verdict::default();
        let Some(ac) = &self.ac else { return v };
        if text.is_empty() {
            return v;
        }
        let folded = fold(text);
        // Folded byte ranges to mask, and their mask.
        let mut masks: Vec<(usize, usize, u32)> = Vec::new();
        let mut flagged_lists: Vec<u32> = Vec::new();
        for m in ac.find_overlapping_iter(&folded) {
            for &(li, wi) in &self.owners[m.pattern().as_usize()] {
                let list = &self.lists[li as usize];
                match list.action {
                    Action::Block => {
                        if v.blocked.is_none() {
                            v.blocked = Some((list.name.clone(), list.words[wi as usize].clone()));
                        }
                    }
                    Action::Replace => masks.push((m.start(), m.end(), li)),
                    Action::Flag => {
                        if !flagged_lists.contains(&li) {
                            flagged_lists.push(li);
                        }
                    }
                }
            }
        }
        flagged_lists.sort_unstable();
        v.flagged = flagged_lists.into_iter().map(|li| self.lists[li as usize].name.clone()).collect();
        if v.blocked.is_none() && !masks.is_empty() {
            v.replaced = Some(self.mask(text, &masks));
        }
        v
    }

    /// The names of the `flag` lists `text` matches (for `message.flagged`
    /// events); empty when there is none or no list at all.
    pub fn flagged(&self, text: &str) -> Vec<String> {
        if self.ac.is_none() {
            return Vec::new();
        }
        self.check(text).flagged
    }

    /// `text` with the original chars behind the folded ranges `masks` replaced.
    fn mask(&self, text: &str, masks: &[(usize, usize, u32)]) -> String {
        let (_, owner, chars) = fold_mapped(text);
        // Per original char: the list whose mask covers it (first match wins).
        let mut cover: Vec<Option<u32>> = vec![None; chars.len()];
        for &(s, e, li) in masks {
            let (Some(&first), Some(&last)) = (owner.get(s), owner.get(e.saturating_sub(1))) else {
                continue;
            };
            for slot in cover.iter_mut().take(last as usize + 1).skip(first as usize) {
                slot.get_or_insert(li);
            }
        }
        let mut out = String::with_capacity(text.len());
        for (i, &(a, b)) in chars.iter().enumerate() {
            match cover[i] {
                Some(li) => out.push_str(&self.lists[li as usize].mask),
                None => out.push_str(&text[a..b]),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(name: &str, action: Action, mask: &str, words: &[&str]) -> WordList {
        WordList {
            name: name.into(),
            action,
            mask: mask.into(),
            words: words.iter().map(|w| (*w).to_owned()).collect(),
        }
    }

    #[test]
    fn folding_case_and_width() {
        assert_eq!(fold("ＢａＤ　Ｗｏｒｄ！"), "bad word!");
        assert_eq!(fold("HeLLo"), "hello");
        assert_eq!(fold("ÄÖ"), "äö");
        let c = Compiled::new(vec![list("l", Action::Replace, "*", &["BAD"])]).expect("compile");
        assert_eq!(c.check("so ｂａｄ!").replaced.as_deref(), Some("so ***!"));
        assert_eq!(c.check("so Bad!").replaced.as_deref(), Some("so ***!"));
        assert!(c.check("so bat").is_clean());
        // A full-width word in the list matches its ASCII form.
        let c = Compiled::new(vec![list("l", Action::Block, "*", &["ＥＶＩＬ"])]).expect("compile");
        assert_eq!(c.check("pure evil").blocked, Some(("l".into(), "ＥＶＩＬ".into())));
    }

    #[test]
    fn chinese_without_word_boundaries() {
        let c = Compiled::new(vec![list("zh", Action::Replace, "*", &["坏词"])]).expect("compile");
        assert_eq!(c.check("这是坏词吗").replaced.as_deref(), Some("这是**吗"));
        assert_eq!(c.check("坏词坏词").replaced.as_deref(), Some("****"));
        assert!(c.check("坏的词").is_clean());
    }

    #[test]
    fn overlapping_words_across_lists() {
        let c = Compiled::new(vec![
            list("a", Action::Replace, "*", &["中国人", "abc"]),
            list("b", Action::Block, "*", &["中国"]),
            list("c", Action::Flag, "*", &["bcd"]),
        ])
        .expect("compile");
        // The shorter block word inside a longer replace word still blocks.
        assert_eq!(c.check("我是中国人").blocked, Some(("b".into(), "中国".into())));
        // Overlapping replace and flag words: masked and flagged.
        let v = c.check("xabcdx");
        assert_eq!(v.replaced.as_deref(), Some("x***dx"));
        assert_eq!(v.flagged, vec!["c".to_owned()]);
        // Overlapping replace words mask their union.
        let c = Compiled::new(vec![list("a", Action::Replace, "#", &["ab", "bc"])]).expect("compile");
        assert_eq!(c.check("abc").replaced.as_deref(), Some("###"));
    }

    #[test]
    fn masks_with_multibyte_chars() {
        let c = Compiled::new(vec![list("m", Action::Replace, "█", &["bad", "坏"])]).expect("compile");
        assert_eq!(c.check("a bad 坏 x").replaced.as_deref(), Some("a ███ █ x"));
        // Full-width originals are masked char by char.
        assert_eq!(c.check("ＢＡＤ!").replaced.as_deref(), Some("███!"));
        // A multi-char mask per char; chars that fold to several chars.
        let c = Compiled::new(vec![list("m", Action::Replace, "<>", &["i̇x"])]).expect("compile");
        assert_eq!(c.check("İX y").replaced.as_deref(), Some("<><> y"));
    }

    #[test]
    fn many_lists_and_the_same_word_in_several() {
        let mut lists = Vec::new();
        for i in 0..50 {
            lists.push(list(&format!("l{i:02}"), Action::Flag, "*", &[&format!("w{i:02}x"), "common"]));
        }
        lists.push(list("zz-block", Action::Block, "*", &["common"]));
        let c = Compiled::new(lists).expect("compile");
        let v = c.check("has w07x and w42x");
        assert_eq!(v.flagged, vec!["l07".to_owned(), "l42".to_owned()]);
        assert!(v.blocked.is_none());
        let v = c.check("COMMON");
        assert_eq!(v.flagged.len(), 50);
        assert_eq!(v.blocked, Some(("zz-block".into(), "common".into())));
        assert_eq!(c.flagged("w01x"), vec!["l01".to_owned()]);
        assert!(Compiled::empty().check("anything").is_clean());
        assert!(Compiled::new(vec![list("e", Action::Block, "*", &[])]).expect("compile").is_empty());
    }
}
