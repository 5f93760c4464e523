import os
import sys

# Make tests/ importable (shared case tables and helpers).
sys.path.insert(0, os.path.dirname(__file__))
