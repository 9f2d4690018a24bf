"""`igwlab verify`: checks that prove inference routing works through a gateway, with hints when not."""
