//! The texts definitions cite, and the articles in them, so a citation can be checked
//! against what the article says: that it exists, and that a statutory limit's number is
//! stated in it.
//!
//! The texts are kept verbatim in `workflows/regulations/` (as published; one of them is a
//! draft with two articles numbered 第四十六条, cited with their chapter to tell them apart:
//! `第四十六条(第七章)`). `index.toml` there gives each text's standing (in force, draft,
//! expired) and its period, as the text states them.

use chrono::NaiveDate;

/// The regulation texts the built-in library cites, by file name.
pub const TEXTS: &[(&str, &str)] = &[
    ("000_98d4feb441e62a43.txt", include_str!("../../regulations/000_98d4feb441e62a43.txt")),
    ("001_cdbee474ad8fd210.txt", include_str!("../../regulations/001_cdbee474ad8fd210.txt")),
    ("002_e4ead0635384efa0.txt", include_str!("../../regulations/002_e4ead0635384efa0.txt")),
    ("003_c6424230f6d82227.txt", include_str!("../../regulations/003_c6424230f6d82227.txt")),
    ("004_be05429c53a83970.txt", include_str!("../../regulations/004_be05429c53a83970.txt")),
];

/// A source's standing: whether and when it binds.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Standing {
    #[serde(default)]
    pub title: String,
    /// `in_force`, `draft` or `expired`.
    pub status: String,
    #[serde(default, deserialize_with = "date")]
    pub in_force_from: Option<NaiveDate>,
    #[serde(default, deserialize_with = "date")]
    pub in_force_until: Option<NaiveDate>,
    /// Where the text states its period.
    #[serde(default)]
    pub period_basis: String,
}

/// The statuses a source may have.
pub const STATUSES: [&str; 3] = ["in_force", "draft", "expired"];

fn date<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<NaiveDate>, D::Error> {
    let value: Option<toml::value::Datetime> = serde::Deserialize::deserialize(deserializer)?;
    value.map(|d| NaiveDate::parse_from_str(&d.to_string(), "%Y-%m-%d").map_err(serde::de::Error::custom)).transpose()
}

impl Standing {
    /// What a reader must be told when a procedure rests on this source on `on`: nothing
    /// while it is in force.
    pub fn notice(&self, title: &str, on: NaiveDate) -> Option<String> {
        if self.status == "draft" {
            return Some(format!("依据文件《{title}》为征求意见稿,尚未生效"));
        }
        if let Some(until) = self.in_force_until.filter(|until| *until < on) {
            return Some(format!("依据文件《{title}》已于{until}失效"));
        }
        if let Some(from) = self.in_force_from.filter(|from| *from > on) {
            return Some(format!("依据文件《{title}》自{from}起施行,此时尚未施行"));
        }
        if self.status == "expired" && self.in_force_until.is_none() {
            return Some(format!("依据文件《{title}》已失效"));
        }
        None
    }
}

/// The standing of a kept text, from `workflows/regulations/index.toml`.
pub fn standing(file: &str) -> Option<&'static Standing> {
    static INDEX: std::sync::OnceLock<std::collections::BTreeMap<String, Standing>> = std::sync::OnceLock::new();
    INDEX
        .get_or_init(|| {
            toml::from_str(include_str!("../../regulations/index.toml")).expect("regulations/index.toml is valid")
        })
        .get(file)
}

/// The text of a cited file, if it is one of [`TEXTS`].
pub fn text(file: &str) -> Option<&'static str> {
    TEXTS.iter().find(|(name, _)| *name == file).map(|(_, text)| *text)
}

/// The articles of a cited file, if it is one of [`TEXTS`] (split once, then kept).
pub fn articles_of(file: &str) -> Option<&'static [Article]> {
    static SPLIT: std::sync::OnceLock<Vec<Vec<Article>>> = std::sync::OnceLock::new();
    let split = SPLIT.get_or_init(|| TEXTS.iter().map(|(_, text)| articles(text)).collect());
    let index = TEXTS.iter().position(|(name, _)| *name == file)?;
    Some(&split[index])
}

/// One article: its heading (`第九条`), the chapter it stands in, and its text with all
/// whitespace removed (the published texts break lines and even numbers arbitrarily).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Article {
    pub chapter: Option<String>,
    pub heading: String,
    pub body: String,
}

const NUMERALS: &str = "零一二三四五六七八九十百";

/// `第…条` or `第…章` at `at` in `chars`: the heading and its length, when it stands on its
/// own (after whitespace or at the start, and followed by whitespace) rather than inside a
/// sentence referring to it.
fn heading_at(chars: &[char], at: usize, unit: char) -> Option<(String, usize)> {
    if chars[at] != '第' || (at > 0 && !chars[at - 1].is_whitespace()) {
        return None;
    }
    let digits = chars[at + 1..].iter().take_while(|c| NUMERALS.contains(**c)).count();
    let end = at + 1 + digits;
    if digits == 0 || chars.get(end) != Some(&unit) || !chars.get(end + 1).is_some_and(|c| c.is_whitespace()) {
        return None;
    }
    Some((chars[at..=end].iter().collect(), digits + 2))
}

/// The articles of a text, in order.
pub fn articles(text: &str) -> Vec<Article> {
    let chars: Vec<char> = text.chars().collect();
    let mut articles: Vec<Article> = Vec::new();
    let mut chapter = None;
    let mut body = String::new();
    let mut at = 0;
    while at < chars.len() {
        if let Some((heading, length)) = heading_at(&chars, at, '条') {
            if let Some(last) = articles.last_mut() {
                last.body = std::mem::take(&mut body);
            }
            articles.push(Article { chapter: chapter.clone(), heading, body: String::new() });
            body.clear();
            at += length;
            continue;
        }
        if let Some((heading, length)) = heading_at(&chars, at, '章') {
            chapter = Some(heading);
            at += length;
            continue;
        }
        if !chars[at].is_whitespace() {
            body.push(chars[at]);
        }
        at += 1;
    }
    if let Some(last) = articles.last_mut() {
        last.body = body;
    }
    articles
}

/// The article a citation names: `第九条`, `第九条第(二)项` (the article is what counts),
/// or `第四十六条(第七章)` where two articles share a number.
pub fn find<'a>(articles: &'a [Article], citation: &str) -> Result<&'a Article, String> {
    let Some(end) = citation.find('条') else {
        return Err(format!("`{citation}` names no article (第…条)"));
    };
    let heading = &citation[..end + '条'.len_utf8()];
    let chapter = citation[end + '条'.len_utf8()..]
        .strip_prefix('(')
        .and_then(|rest| rest.split_once(')'))
        .map(|(inside, _)| inside)
        .filter(|inside| inside.ends_with('章'));
    let matching: Vec<&Article> = articles
        .iter()
        .filter(|a| a.heading == heading && chapter.is_none_or(|c| a.chapter.as_deref() == Some(c)))
        .collect();
    match matching.as_slice() {
        [one] => Ok(one),
        [] => Err(format!("the text has no {heading}{}", chapter.map(|c| format!(" in {c}")).unwrap_or_default())),
        several => Err(format!(
            "the text has {} articles numbered {heading}; say which with its chapter, e.g. `{heading}({})`",
            several.len(),
            several[0].chapter.as_deref().unwrap_or("第…章")
        )),
    }
}

/// `n` in Chinese numerals (1–999), as the texts write small numbers.
fn chinese(n: u32) -> String {
    const DIGITS: [&str; 10] = ["零", "一", "二", "三", "四", "五", "六", "七", "八", "九"];
    let (hundreds, tens, ones) = (n / 100, n / 10 % 10, n % 10);
    let mut out = String::new();
    if hundreds > 0 {
        out.push_str(DIGITS[hundreds as usize]);
        out.push('百');
        if tens == 0 && ones > 0 {
            out.push('零');
        }
    }
    if tens > 0 {
        if !(tens == 1 && hundreds == 0) {
            out.push_str(DIGITS[tens as usize]);
        }
        out.push('十');
    }
    if ones > 0 || n == 0 {
        out.push_str(DIGITS[ones as usize]);
    }
    out
}

/// Whether an article's text states `n` of `unit` (`working_days`, `days`, `months`,
/// `years`, `hours`), in digits or Chinese numerals.
pub fn states(body: &str, unit: &str, n: u32) -> bool {
    let words: &[&str] = match unit {
        "working_days" => &["个工作日"],
        "days" => &["日", "天", "个自然日"],
        "months" => &["个月"],
        "years" => &["年"],
        "hours" => &["小时", "个小时"],
        _ => return false,
    };
    // `两` is how the texts say two of something; `每年` is once a year.
    if unit == "years" && n == 1 && body.contains("每年") {
        return true;
    }
    let mut numbers = vec![n.to_string(), chinese(n)];
    if n == 2 {
        numbers.push("两".into());
    }
    numbers.iter().any(|number| {
        words.iter().any(|word| {
            let phrase = format!("{number}{word}");
            // `6个月` inside `16个月` is another number.
            body.match_indices(&phrase).any(|(at, _)| {
                !body[..at].chars().next_back().is_some_and(|c| c.is_ascii_digit() || NUMERALS.contains(c))
            })
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_text_splits_into_its_numbered_articles() {
        for (file, text) in TEXTS {
            let articles = articles(text);
            assert!(articles.len() >= 20, "{file}: {}", articles.len());
            assert_eq!(articles[0].heading, "第一条", "{file}");
            assert!(articles.iter().all(|a| !a.body.is_empty()), "{file}");
        }
        let taian = articles(text("002_e4ead0635384efa0.txt").unwrap());
        let ninth = find(&taian, "第九条第(二)项").unwrap();
        assert!(states(&ninth.body, "working_days", 3), "{}", ninth.body);
        assert!(!states(&ninth.body, "working_days", 4));
    }

    #[test]
    fn two_articles_with_one_number_are_told_apart_by_their_chapter() {
        let wuzhong = articles(text("003_c6424230f6d82227.txt").unwrap());
        let error = find(&wuzhong, "第四十六条").unwrap_err();
        assert!(error.contains("2 articles numbered 第四十六条"), "{error}");
        assert!(find(&wuzhong, "第四十六条(第七章)").unwrap().body.contains("暂时关闭"));
        assert!(find(&wuzhong, "第四十六条(第八章)").unwrap().body.contains("起试行"));
        assert!(find(&wuzhong, "第九十条").is_err());
    }

    #[test]
    fn every_kept_text_has_its_standing_and_the_title_it_is_cited_by() {
        for (file, text) in TEXTS {
            let standing = standing(file).unwrap_or_else(|| panic!("{file} is not in index.toml"));
            assert!(STATUSES.contains(&standing.status.as_str()), "{file}");
            assert!(!standing.title.is_empty() && !text.is_empty(), "{file}");
            // A binding text states its period; a draft has none.
            assert_eq!(standing.in_force_from.is_some(), standing.status != "draft", "{file}");
        }
        let open = standing("004_be05429c53a83970.txt").unwrap();
        let on = |d: &str| NaiveDate::parse_from_str(d, "%Y-%m-%d").unwrap();
        assert_eq!(open.notice("开放办法", on("2024-07-31")), None, "its last day");
        assert_eq!(open.notice("开放办法", on("2026-03-02")), Some("依据文件《开放办法》已于2024-07-31失效".into()));
        let draft = standing("003_c6424230f6d82227.txt").unwrap();
        assert_eq!(draft.notice("吴忠", on("2026-03-02")), Some("依据文件《吴忠》为征求意见稿,尚未生效".into()));
        let taian = standing("002_e4ead0635384efa0.txt").unwrap();
        assert_eq!(taian.notice("泰安", on("2026-03-02")), None);
        assert_eq!(
            taian.notice("泰安", on("2024-10-01")),
            Some("依据文件《泰安》自2024-11-01起施行,此时尚未施行".into())
        );
    }

    #[test]
    fn numbers_read_as_the_texts_write_them() {
        assert_eq!(chinese(3), "三");
        assert_eq!(chinese(10), "十");
        assert_eq!(chinese(15), "十五");
        assert_eq!(chinese(20), "二十");
        assert_eq!(chinese(105), "一百零五");
        assert!(states("应当在十五个工作日内", "working_days", 15));
        assert!(states("期限为6个月", "months", 6));
        assert!(states("受理之日起两个工作日内", "working_days", 2));
        assert!(states("应当每年向主管部门提交", "years", 1));
        assert!(!states("期限为16个月", "months", 6), "16 is not 6");
        assert!(!states("二十五个工作日", "working_days", 5), "二十五 is not 五");
        assert!(states("期限为16个月", "months", 16));
    }
}
