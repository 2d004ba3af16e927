"""The Scrapy side of the benchmark: a CrawlSpider following every link of the site,
handing every <img src> to Scrapy's ImagesPipeline, which stores them in a directory.

Run by bench.py as `scrapy runspider scrapy_spider.py -a start_url=URL -s IMAGES_STORE=DIR
-s BENCH_STATS=FILE` with the settings below; everything else is Scrapy's default.
"""

import json

from scrapy.linkextractors import LinkExtractor
from scrapy.spiders import CrawlSpider, Rule


class BenchSpider(CrawlSpider):
    """Follows every link; every page yields one item with its image URLs."""

    name = "bench"
    custom_settings = {
        "ITEM_PIPELINES": {"scrapy.pipelines.images.ImagesPipeline": 1},
        "CONCURRENT_REQUESTS": 64,
        "CONCURRENT_REQUESTS_PER_DOMAIN": 64,
        "ROBOTSTXT_OBEY": True,
    }
    rules = (Rule(LinkExtractor(), callback="parse_page", follow=True),)

    def __init__(self, start_url=None, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.start_urls = [start_url]
        self.pages = 0

    def parse_start_url(self, response):
        return self.parse_page(response)

    def parse_page(self, response):
        self.pages += 1
        srcs = response.css("img::attr(src)").getall()
        yield {"page": response.url, "image_urls": [response.urljoin(s) for s in srcs]}

    def closed(self, reason):
        path = self.settings.get("BENCH_STATS")
        if not path:
            return
        stats = {k: v for k, v in self.crawler.stats.get_stats().items()}
        out = {"reason": reason, "pages": self.pages, "stats": stats}
        with open(path, "w") as f:
            json.dump(out, f, indent=1, default=str)
