"""The renter's status page (issue 25): what the person holding the router may see, on
its LAN address, in English and Japanese, and as versioned JSON (docs/status-page.md).

``facts`` turns the daemon's ``renter`` answer into the one document both forms show,
``words`` holds every sentence in both languages, ``render`` draws the HTML and SVG,
``server`` serves them (asyncio, bounded). Imported only when the page is on
(agent/core/paged.py).
"""
