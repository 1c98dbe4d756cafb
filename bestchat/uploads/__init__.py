"""Uploaded files below the service: where their bytes live (:mod:`.storage`), the incoming
body on its way there (:mod:`.spool`), what they are (:mod:`.sniff`) and the text a model is
given of them (:mod:`.extract`). The rules (who may see what, de-duplication, deletion) are
:mod:`bestchat.services.uploads`."""
