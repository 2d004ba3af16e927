//! A parsed page's children: new in-scope pages and new image URLs, claimed in the
//! seen-set and within the job's budgets; and the "page" that turned out to be an image.

use chrono::Utc;
use imgcrawl_bus::worker::{Delivery, Outcome};
use imgcrawl_events::{Event, FoundBy, ImageDiscovered, JobSpec, PageDiscovered, PageFailure};
use url::Url;

use crate::extract::{Extracted, FoundImage};
use crate::frontier::{admit, owner_tag, Kind};
use crate::handler::{retry, Crawler};
use crate::scope::JobScope;

impl Crawler {
    /// The new pages and images of a parsed page, claimed and within budget.
    pub(crate) async fn children(
        &self,
        ev: &PageDiscovered,
        spec: &JobSpec,
        scope: &JobScope,
        page: &Url,
        found: &Extracted,
        owner: &str,
    ) -> Result<Vec<Event>, Outcome> {
        let now = Utc::now();
        let mut events = Vec::new();
        if let Some(depth) = scope.child_depth(ev.depth) {
            let links: Vec<String> = found
                .links
                .iter()
                .filter(|u| scope.page_allowed(u) && u.as_str() != ev.url && *u != page)
                .map(Url::to_string)
                .collect();
            let admitted = admit(
                &self.bus.seen,
                spec.job_id,
                Kind::Page,
                spec.scope.max_pages,
                &links,
                owner,
                Some(depth),
            )
            .await
            .map_err(|e| retry("claim links", &e))?;
            events.extend(admitted.into_iter().map(|i| {
                Event::PageDiscovered(PageDiscovered {
                    job_id: spec.job_id,
                    url: links[i].clone(),
                    depth,
                    referrer: Some(page.to_string()),
                    occurred_at: now,
                })
            }));
        }
        let images: Vec<&FoundImage> = found
            .images
            .iter()
            .filter(|i| scope.image_allowed(&i.url))
            .collect();
        let urls: Vec<String> = images.iter().map(|i| i.url.to_string()).collect();
        let admitted = admit(
            &self.bus.seen,
            spec.job_id,
            Kind::Image,
            spec.scope.max_images,
            &urls,
            owner,
            None,
        )
        .await
        .map_err(|e| retry("claim images", &e))?;
        events.extend(admitted.into_iter().map(|i| {
            Event::ImageDiscovered(ImageDiscovered {
                job_id: spec.job_id,
                url: urls[i].clone(),
                page_url: page.to_string(),
                alt: images[i].alt.clone(),
                found_by: images[i].found_by,
                occurred_at: now,
            })
        }));
        Ok(events)
    }

    /// A "page" that is an image: hand it to download, then record `not_html`.
    pub(crate) async fn image_page(
        &self,
        ev: &PageDiscovered,
        d: &Delivery,
        spec: &JobSpec,
        scope: &JobScope,
        url: &Url,
        status: u16,
    ) -> Outcome {
        let mut detail = "the response is an image".to_string();
        if scope.image_allowed(url) {
            let urls = [ev.url.clone()];
            let admitted = match admit(
                &self.bus.seen,
                spec.job_id,
                Kind::Image,
                spec.scope.max_images,
                &urls,
                &owner_tag(d),
                None,
            )
            .await
            {
                Ok(a) => a,
                Err(e) => return retry("claim image", &e),
            };
            if !admitted.is_empty() {
                let image = Event::ImageDiscovered(ImageDiscovered {
                    job_id: spec.job_id,
                    url: ev.url.clone(),
                    page_url: ev.referrer.clone().unwrap_or_else(|| ev.url.clone()),
                    alt: None,
                    found_by: FoundBy::Link,
                    occurred_at: Utc::now(),
                });
                if let Err(e) = self.publish(std::slice::from_ref(&image)).await {
                    return retry("publish image.discovered", &e);
                }
                detail.push_str("; sent to download");
            }
        }
        self.fail(ev, PageFailure::NotHtml, detail, Some(status))
            .await
    }
}
