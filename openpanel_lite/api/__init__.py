"""Machine APIs for read/root clients (OpenPanel-compatible export API)."""
