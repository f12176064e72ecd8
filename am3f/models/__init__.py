"""Stage 3, the architectures: AM3F-FlowNet (``am3f_flownet``), the peers (``peers``), the registry of
every architecture and named variant (``registry``), your own model (``user_model``)."""
